//! Checkpoint loaders: read a file that TensorFlow, PyTorch, Keras, NumPy or
//! safetensors wrote, and turn it into the canonical [`Model`].
//!
//! Reading is two steps kept apart: a *format* reader (one module each:
//! [`tf`], [`torch`], [`npz`], [`safetensors`], [`onnx`]) turns bytes into
//! named [`RawTensor`]s, and the *layout* ([`layout`], the one place that
//! knows naming conventions) maps names, gate orders and transposes to the
//! canonical model. Formats that record the model's structure (an ONNX
//! graph) also say which layout their names follow ([`Read`]). Every length a file claims is checked against the bytes
//! actually present before anything is allocated, so a corrupt header gives
//! an error, never a panic or a huge allocation.

pub mod keras;
pub mod layout;
pub mod npz;
pub mod onnx;
mod pickle;
pub mod safetensors;
pub mod saved_model;
pub mod tensor;
pub mod tf;
pub mod torch;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::model::{Model, ModelError};
pub use layout::{Layout, Structure, TensorUse};
pub use tensor::{DType, RawTensor};
pub use write::{save_compacted, save_safetensors, torch_names, write_atomically};

/// What is wrong with a checkpoint, without the file name (see
/// [`CheckpointError`], which adds it).
#[derive(Debug, Error)]
pub enum ErrorKind {
    /// The operating system could not read the file.
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    /// The operating system could not write the file.
    #[error("cannot write: {0}")]
    Write(std::io::Error),
    /// A path that is not a regular file (a device, a pipe), which could
    /// be read forever.
    #[error("not a regular file")]
    NotRegular,
    /// Neither the extension nor the first bytes say what the file is.
    #[error("not a checkpoint issbench can read ({0})")]
    UnknownFormat(String),
    /// A magic number or signature is wrong.
    #[error("wrong magic: {0}")]
    BadMagic(String),
    /// The file ends before a structure it declares.
    #[error("truncated: {0}")]
    Truncated(String),
    /// A length or count is larger than what the file can hold.
    #[error("{what} claims {claimed} bytes but only {available} are available")]
    TooLarge { what: String, claimed: u128, available: u64 },
    /// A stored checksum does not match the bytes.
    #[error("checksum mismatch ({what}): stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { what: String, stored: u32, computed: u32 },
    /// Structurally invalid content.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// Valid content that issbench does not handle (and says why).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An element type that cannot be a weight.
    #[error("{0}")]
    DType(String),
    /// A shape that does not fit the role or the bytes.
    #[error("bad shape: {0}")]
    Shape(String),
    /// A tensor the layout needs is not in the file.
    #[error("missing tensor: {0}")]
    Missing(String),
    /// The tensor names match no known naming scheme (or several).
    #[error("naming: {0}")]
    Layout(String),
    /// A pickle uses something a state dict never needs.
    #[error("pickle: {0}")]
    Pickle(String),
    /// The tensors do not form a valid model.
    #[error("{0}")]
    Model(Box<ModelError>),
}

impl From<std::io::Error> for ErrorKind {
    fn from(e: std::io::Error) -> Self {
        ErrorKind::Io(e)
    }
}

impl From<ModelError> for ErrorKind {
    fn from(e: ModelError) -> Self {
        ErrorKind::Model(Box::new(e))
    }
}

/// A checkpoint that could not be read: the file, the tensor when one is to
/// blame, and what is wrong. Displays as one line.
#[derive(Debug, Error)]
pub struct CheckpointError {
    /// The file (or checkpoint prefix) being read.
    pub file: PathBuf,
    /// The tensor involved, if any.
    pub tensor: Option<String>,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if let Some(t) = &self.tensor {
            write!(f, "tensor '{t}': ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl CheckpointError {
    /// An error about the file as a whole.
    pub fn new(file: &Path, kind: impl Into<ErrorKind>) -> Self {
        CheckpointError {
            file: file.to_path_buf(),
            tensor: None,
            kind: kind.into(),
        }
    }
    /// An error about one tensor of the file.
    pub fn tensor(file: &Path, tensor: &str, kind: impl Into<ErrorKind>) -> Self {
        CheckpointError {
            file: file.to_path_buf(),
            tensor: Some(tensor.to_string()),
            kind: kind.into(),
        }
    }
}

/// File formats issbench reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// TensorFlow V2 checkpoint bundle (`.index` + `.data-*` shards).
    TfCheckpoint,
    /// `torch.save` zip archive (`.pt`, `.pth`).
    TorchZip,
    /// safetensors.
    Safetensors,
    /// NumPy `.npz` archive.
    Npz,
    /// A single NumPy `.npy` array.
    Npy,
    /// An ONNX model (`.onnx`).
    Onnx,
    /// A Keras 3 model file (`.keras`: a zip of config and HDF5 weights).
    Keras,
    /// A legacy Keras HDF5 model file (`.h5` from `model.save`).
    KerasH5,
    /// A TensorFlow SavedModel folder (`saved_model.pb` and `variables/`).
    SavedModel,
}

impl Format {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Format::TfCheckpoint => "tf-checkpoint",
            Format::TorchZip => "torch-zip",
            Format::Safetensors => "safetensors",
            Format::Npz => "npz",
            Format::Npy => "npy",
            Format::Onnx => "onnx",
            Format::Keras => "keras",
            Format::KerasH5 => "keras-h5",
            Format::SavedModel => "saved-model",
        }
    }
    /// Every format, in the order the command line lists them.
    pub const ALL: [Format; 9] = [
        Format::TfCheckpoint,
        Format::TorchZip,
        Format::Safetensors,
        Format::Npz,
        Format::Npy,
        Format::Onnx,
        Format::Keras,
        Format::KerasH5,
        Format::SavedModel,
    ];
    /// Parses [`Format::name`].
    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == s)
    }
    /// Every format's name, comma-separated (for messages).
    pub fn names() -> String {
        Format::ALL.map(Format::name).join(", ")
    }
}

/// What a format reader found: the tensors and, for formats that record the
/// model's structure, the layout their names follow, what the structure
/// says (layer order, cell kinds) and notes.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub tensors: Vec<RawTensor>,
    pub layout: Option<Layout>,
    pub structure: Structure,
    pub notes: Vec<String>,
}

impl Read {
    /// Tensors alone (formats that name them).
    fn named(tensors: Vec<RawTensor>) -> Read {
        Read {
            tensors,
            ..Read::default()
        }
    }
}

/// Overrides for [`load`]; the defaults detect everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Read the file as this format instead of detecting it.
    pub format: Option<Format>,
    /// Map names with this layout instead of detecting it.
    pub layout: Option<Layout>,
    /// TensorFlow `BasicLSTMCell` forget bias, added to the f gate's bias
    /// (the checkpoint does not store it). Default 0.0 for `tf-basic-lstm`,
    /// as the ISS PTB code trains; 1.0 for `tf-bidaf`, TensorFlow's own
    /// default, which BiDAF's cells use.
    pub forget_bias: Option<f32>,
}

/// A loaded checkpoint: the model and how it was read.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The canonical model (named after the file).
    pub model: Model,
    /// The format that was read.
    pub format: Format,
    /// The naming scheme that was applied.
    pub layout: Layout,
    /// The forget bias folded into the f gate (TensorFlow layouts only).
    pub forget_bias: Option<f32>,
    /// Every tensor in the file and the role it played (or `ignored`).
    pub tensors: Vec<TensorUse>,
    /// Conversions and other things the user should know.
    pub notes: Vec<String>,
}

/// Tells the format of `path` from what it is (folder, `.index`, prefix)
/// and from its first bytes.
pub fn detect_format(path: &Path) -> Result<Format, CheckpointError> {
    if saved_model::is_saved_model(path) {
        return Ok(Format::SavedModel);
    }
    if path.is_dir() || path.extension().is_some_and(|e| e == "index") || (!path.exists() && tf::index_path(path).is_file()) {
        return Ok(Format::TfCheckpoint);
    }
    if has_extension(path, &["onnx"]) {
        return Ok(Format::Onnx);
    }
    let mut head = [0u8; 16];
    let n = read_head(path, &mut head).map_err(|e| CheckpointError::new(path, e))?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return npz::zip_kind(path);
    }
    if head.starts_with(b"\x89HDF\r\n\x1a\n") || has_extension(path, &["h5", "hdf5"]) {
        return Ok(Format::KerasH5);
    }
    if head.starts_with(b"\x93NUMPY") {
        return Ok(Format::Npy);
    }
    if head.len() >= 9 && head[8] == b'{' {
        return Ok(Format::Safetensors);
    }
    if head.first() == Some(&0x80) {
        return Err(CheckpointError::new(
            path,
            ErrorKind::Unsupported(
                "a bare pickle (torch.save before PyTorch 1.6, or pickle.dump); re-save it with a current torch.save".into(),
            ),
        ));
    }
    Err(CheckpointError::new(
        path,
        ErrorKind::UnknownFormat(
            "expected a TensorFlow checkpoint or SavedModel, .pt/.pth zip, .safetensors, .npz, .npy, .onnx, .keras or .h5".into(),
        ),
    ))
}

/// Whether `path` ends in one of `extensions` (any case).
fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn read_head(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads every tensor of `path` as stored, in the file's order (for an
/// ONNX model: as its reader names them, see [`onnx`]).
pub fn read_tensors(path: &Path, format: Format) -> Result<Vec<RawTensor>, CheckpointError> {
    read(path, format).map(|r| r.tensors)
}

/// Runs the reader of `format` on `path`.
fn read(path: &Path, format: Format) -> Result<Read, CheckpointError> {
    match format {
        Format::TfCheckpoint => tf::read(path).map(Read::named),
        Format::TorchZip => torch::read(path).map(Read::named),
        Format::Safetensors => safetensors::read(path).map(Read::named),
        Format::Npz => npz::read_npz(path).map(Read::named),
        Format::Npy => npz::read_npy(path).map(Read::named),
        Format::Onnx => onnx::read(path),
        Format::Keras => keras::read_keras(path),
        Format::KerasH5 => keras::read_h5(path),
        Format::SavedModel => saved_model::read(path),
    }
}

/// Loads the model in `path`: detects (or takes) the format and layout,
/// reads the tensors, maps them to the canonical layout and validates the
/// model.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Checkpoint, CheckpointError> {
    let format = match options.format {
        Some(f) => f,
        None => detect_format(path)?,
    };
    let choose = |names: &[&str]| match options.layout {
        Some(l) => Ok(l),
        None => Layout::detect_names(names).map_err(|e| CheckpointError::new(path, e)),
    };
    let mut notes = Vec::new();
    let mut structure = Structure::default();
    // Zip archives: the layout first (from the names), then only the data
    // it may use, so that large members nothing reads are never inflated.
    let (tensors, layout) = match format {
        Format::Npz => {
            let names = npz::array_names(path)?;
            let layout = choose(&names.iter().map(String::as_str).collect::<Vec<_>>())?;
            (npz::read_npz_keeping(path, &|n| layout.may_use(n))?, layout)
        }
        Format::TorchZip => {
            let names = torch::entry_names(path)?;
            let layout = choose(&names.iter().map(String::as_str).collect::<Vec<_>>())?;
            (torch::read_keeping(path, &|n| layout.may_use(n))?, layout)
        }
        _ => {
            let read = read(path, format)?;
            let layout = match (read.layout, options.layout) {
                (Some(implied), Some(asked)) if implied != asked => {
                    return Err(CheckpointError::new(
                        path,
                        ErrorKind::Layout(format!(
                            "the tensors of a {} file follow the {} layout, not {}",
                            format.name(),
                            implied.name(),
                            asked.name()
                        )),
                    ));
                }
                (Some(implied), _) => implied,
                (None, _) => choose(&read.tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>())?,
            };
            (notes, structure) = (read.notes, read.structure);
            (read.tensors, layout)
        }
    };
    let name = model_name(path);
    let built =
        layout::build_ordered(&name, &tensors, layout, options.forget_bias, &structure).map_err(|(tensor, kind)| CheckpointError {
            file: path.to_path_buf(),
            tensor,
            kind,
        })?;
    notes.extend(built.notes);
    Ok(Checkpoint {
        model: built.model,
        format,
        layout,
        forget_bias: built.forget_bias,
        tensors: built.uses,
        notes,
    })
}

/// The file stem, or the folder name for a TensorFlow checkpoint folder or a SavedModel.
fn model_name(path: &Path) -> String {
    // A SavedModel named by its saved_model.pb is its folder.
    let path = match path.file_name() {
        Some(n) if n == "saved_model.pb" => path.parent().unwrap_or(path),
        _ => path,
    };
    let stem = if path.is_dir() { path.file_name() } else { path.file_stem() };
    stem.map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into())
}

/// Whether a model name on the command line is a checkpoint path (one
/// that exists, or a TensorFlow prefix) rather than a built-in name.
/// `builtin:NAME` always names the built-in model.
pub fn is_checkpoint_path(name_or_path: &str) -> bool {
    let path = Path::new(name_or_path);
    !name_or_path.starts_with("builtin:") && (path.exists() || tf::index_path(path).is_file())
}

/// Whether `name` is both a built-in model and a path here (the path wins;
/// `builtin:NAME` picks the built-in).
pub fn shadows_builtin(name: &str) -> bool {
    is_checkpoint_path(name) && crate::model::synthetic::SynthSpec::builtin(name).is_some()
}

/// The model a command line names: a checkpoint path (loaded with
/// `options`), or else a built-in synthetic model (`issbench models`;
/// `builtin:NAME` names one even where a file of that name exists).
pub fn open_model(name_or_path: &str, options: &LoadOptions) -> Result<Model, CheckpointError> {
    let path = Path::new(name_or_path);
    if is_checkpoint_path(name_or_path) {
        return load(path, options).map(|ck| ck.model);
    }
    let name = name_or_path.strip_prefix("builtin:").unwrap_or(name_or_path);
    match crate::model::synthetic::SynthSpec::builtin(name) {
        Some(spec) => spec.build().map_err(|e| CheckpointError::new(path, e)),
        None => Err(CheckpointError::new(
            path,
            ErrorKind::Unsupported("no such file, nor a built-in model of that name (`issbench models` lists them)".into()),
        )),
    }
}

/// Reads a whole file that must be a regular file (not a device or a
/// pipe, which a symbolic link can make any path).
pub(crate) fn read_regular(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    check_regular(path)?;
    std::fs::read(path).map_err(|e| CheckpointError::new(path, e))
}

/// Fails unless `path` is a regular file.
pub(crate) fn check_regular(path: &Path) -> Result<(), CheckpointError> {
    let meta = std::fs::metadata(path).map_err(|e| CheckpointError::new(path, e))?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(CheckpointError::new(path, ErrorKind::NotRegular))
    }
}

/// Whether `a` and `b` are the same file (the same inode, or, where that
/// cannot be told, the same canonical path). Missing files are different.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
        false
    }
    #[cfg(not(unix))]
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Whether writing `output` would overwrite a file the checkpoint at
/// `input` is read from (its file, a file of its TensorFlow folder or
/// prefix, or of its SavedModel).
pub fn overwrites_input(input: &Path, output: &Path) -> bool {
    if same_file(input, output) {
        return true;
    }
    let in_folder = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|entries| entries.flatten().any(|e| same_file(&e.path(), output)))
            .unwrap_or(false)
    };
    // A SavedModel (its folder, or its saved_model.pb): its files and its variables'.
    if saved_model::is_saved_model(input) {
        let folder = if input.is_dir() {
            input
        } else {
            input.parent().unwrap_or(Path::new("."))
        };
        return in_folder(folder) || in_folder(&folder.join("variables"));
    }
    if input.is_dir() {
        return in_folder(input);
    }
    // A TensorFlow prefix (`model.ckpt-N`) or index: the files beside it
    // that start with the prefix.
    let prefix = input.to_string_lossy().trim_end_matches(".index").to_string();
    let dir = input.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().to_string_lossy().starts_with(&prefix) && same_file(&e.path(), output))
        })
        .unwrap_or(false)
}
