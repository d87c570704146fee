//! A pickle reader for `torch.save` state dicts that never executes
//! anything. It understands the opcodes a state dict uses and treats the few
//! callables a state dict names (`OrderedDict`, `_rebuild_tensor_v2`,
//! `_rebuild_parameter`) as data constructors; any other global, and any
//! other opcode, is refused with its name. Nesting depth and the work done
//! copying memoised values are bounded, so a hostile pickle cannot exhaust
//! the stack or the memory.

use std::collections::HashMap;

use super::ErrorKind;

/// Deepest nesting of containers accepted (state dicts need 4).
const MAX_DEPTH: u16 = 64;

/// A value of the pickle machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Items),
    List(Items),
    /// Keys and values, in insertion order.
    Dict(Items),
    /// A global name, `module.name`, from the allow-list.
    Global(String),
    /// A persistent id: in `torch.save`, the storage tuple
    /// `('storage', storage_type, key, location, numel)`.
    PersistentId(Box<Value>),
    /// A tensor view of a storage.
    Tensor(TensorRef),
}

/// Items of a container and the depth of the deepest one inside.
#[derive(Debug, Clone, PartialEq)]
pub struct Items {
    pub items: Vec<Value>,
    depth: u16,
}

/// What `_rebuild_tensor_v2` describes: a view of a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The storage's key, the name of its zip member under `data/`.
    pub storage_key: String,
    /// The storage type's name, e.g. `FloatStorage`.
    pub storage_type: String,
    /// Elements in the storage, as the pickle claims.
    pub storage_numel: u64,
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

impl Value {
    fn depth(&self) -> u16 {
        match self {
            Value::Tuple(c) | Value::List(c) | Value::Dict(c) => c.depth,
            Value::PersistentId(v) => v.depth() + 1,
            _ => 0,
        }
    }
    /// Number of nodes, to charge memo copies.
    fn nodes(&self) -> usize {
        match self {
            Value::Tuple(c) | Value::List(c) | Value::Dict(c) => 1 + c.items.iter().map(Value::nodes).sum::<usize>(),
            Value::PersistentId(v) => 1 + v.nodes(),
            Value::Str(s) => 1 + s.len() / 64,
            Value::Bytes(b) => 1 + b.len() / 64,
            _ => 1,
        }
    }
    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn items(items: Vec<Value>) -> Result<Items, ErrorKind> {
    let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
    if depth > MAX_DEPTH {
        return Err(ErrorKind::Pickle(format!("containers nested deeper than {MAX_DEPTH}")));
    }
    Ok(Items { items, depth })
}

/// Globals a state dict may name. Storage types are matched separately.
const ALLOWED_GLOBALS: &[&str] = &[
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
];

fn allowed(global: &str) -> bool {
    ALLOWED_GLOBALS.contains(&global) || (global.starts_with("torch.") && global.ends_with("Storage") && !global[6..].contains('.'))
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    copy_budget: usize,
}

/// Runs the pickle in `data` and returns the value it leaves.
pub fn load(data: &[u8]) -> Result<Value, ErrorKind> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        copy_budget: 16 * data.len() + 1024,
    };
    m.run()
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ErrorKind> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| ErrorKind::Truncated(format!("pickle: {n} bytes wanted at offset {} of {}", self.pos, self.data.len())))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn uint(&mut self, n: usize) -> Result<u64, ErrorKind> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |v, &b| (v << 8) | b as u64))
    }
    fn len(&mut self, n: usize) -> Result<usize, ErrorKind> {
        let len = self.uint(n)?;
        let left = (self.data.len() - self.pos) as u64;
        if len > left {
            return Err(ErrorKind::TooLarge {
                what: format!("pickle string at offset {}", self.pos),
                claimed: len as u128,
                available: left,
            });
        }
        Ok(len as usize)
    }
    fn line(&mut self) -> Result<&'a str, ErrorKind> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| ErrorKind::Truncated("pickle: unterminated GLOBAL".into()))?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| ErrorKind::Pickle("GLOBAL name is not UTF-8".into()))
    }
    fn pop(&mut self) -> Result<Value, ErrorKind> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(ErrorKind::Pickle(format!("stack underflow at offset {}", self.pos)));
        }
        self.stack
            .pop()
            .ok_or_else(|| ErrorKind::Pickle(format!("stack underflow at offset {}", self.pos)))
    }
    fn top(&mut self) -> Result<&mut Value, ErrorKind> {
        let pos = self.pos;
        self.stack
            .last_mut()
            .ok_or_else(|| ErrorKind::Pickle(format!("empty stack at offset {pos}")))
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>, ErrorKind> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| ErrorKind::Pickle(format!("no MARK at offset {}", self.pos)))?;
        Ok(self.stack.split_off(mark))
    }
    fn push_global(&mut self, module: &str, name: &str) -> Result<(), ErrorKind> {
        let global = format!("{module}.{name}");
        if !allowed(&global) {
            return Err(ErrorKind::Pickle(format!(
                "refusing global {global} (a state dict only names OrderedDict, tensor rebuilders and storage types)"
            )));
        }
        self.stack.push(Value::Global(global));
        Ok(())
    }
    fn memo_put(&mut self, key: u32) -> Result<(), ErrorKind> {
        let v = self.top()?.clone();
        self.charge(&v)?;
        self.memo.insert(key, v);
        Ok(())
    }
    fn memo_get(&mut self, key: u32) -> Result<(), ErrorKind> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| ErrorKind::Pickle(format!("memo key {key} is not set")))?;
        self.charge(&v)?;
        self.stack.push(v);
        Ok(())
    }
    fn charge(&mut self, v: &Value) -> Result<(), ErrorKind> {
        self.copy_budget = self
            .copy_budget
            .checked_sub(v.nodes())
            .ok_or_else(|| ErrorKind::Pickle("memoised values are copied out of proportion to the file (a pickle bomb?)".into()))?;
        Ok(())
    }
    fn set_items(&mut self, pairs: Vec<Value>) -> Result<(), ErrorKind> {
        if !pairs.len().is_multiple_of(2) {
            return Err(ErrorKind::Pickle("SETITEMS with an odd number of items".into()));
        }
        let target = self.pop()?;
        let Value::Dict(mut d) = target else {
            return Err(ErrorKind::Pickle(format!("SETITEM on a non-dict at offset {}", self.pos)));
        };
        d.items.extend(pairs);
        self.stack.push(Value::Dict(items(d.items)?));
        Ok(())
    }
    fn append(&mut self, new: Vec<Value>) -> Result<(), ErrorKind> {
        let Value::List(mut l) = self.pop()? else {
            return Err(ErrorKind::Pickle(format!("APPEND on a non-list at offset {}", self.pos)));
        };
        l.items.extend(new);
        self.stack.push(Value::List(items(l.items)?));
        Ok(())
    }

    fn run(&mut self) -> Result<Value, ErrorKind> {
        loop {
            let at = self.pos;
            let op = self.take(1)?[0];
            match op {
                0x80 => {
                    let proto = self.uint(1)?;
                    if proto > 5 {
                        return Err(ErrorKind::Unsupported(format!("pickle protocol {proto}")));
                    }
                }
                0x95 => {
                    self.uint(8)?; // FRAME: a length hint only
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                b'(' => {
                    if self.marks.len() >= MAX_DEPTH as usize {
                        return Err(ErrorKind::Pickle(format!("more than {MAX_DEPTH} open MARKs")));
                    }
                    self.marks.push(self.stack.len());
                }
                b'}' => self.stack.push(Value::Dict(items(vec![])?)),
                b']' => self.stack.push(Value::List(items(vec![])?)),
                b')' => self.stack.push(Value::Tuple(items(vec![])?)),
                b't' => {
                    let v = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items(v)?));
                }
                b'l' => {
                    let v = self.pop_mark()?;
                    self.stack.push(Value::List(items(v)?));
                }
                b'd' => {
                    let v = self.pop_mark()?;
                    self.stack.push(Value::Dict(items(vec![])?));
                    self.set_items(v)?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        v.push(self.pop()?);
                    }
                    v.reverse();
                    self.stack.push(Value::Tuple(items(v)?));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let v = self.pop_mark()?;
                    self.append(v)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![key, value])?;
                }
                b'u' => {
                    let v = self.pop_mark()?;
                    self.set_items(v)?;
                }
                b'q' => {
                    let k = self.uint(1)? as u32;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.uint(4)? as u32;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u32;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.uint(1)? as u32;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.uint(4)? as u32;
                    self.memo_get(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push_global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => {
                            let (m, n) = (m.to_string(), n.to_string());
                            self.push_global(&m, &n)?
                        }
                        _ => return Err(ErrorKind::Pickle("STACK_GLOBAL needs two strings".into())),
                    }
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.len(4)?,
                        0x8c => self.len(1)?,
                        _ => self.len(8)?,
                    };
                    let s = std::str::from_utf8(self.take(n)?)
                        .map_err(|_| ErrorKind::Pickle(format!("invalid UTF-8 string at offset {at}")))?;
                    self.stack.push(Value::Str(s.to_string()));
                }
                b'T' | b'U' | b'B' | b'C' => {
                    let n = match op {
                        b'T' | b'B' => self.len(4)?,
                        _ => self.len(1)?,
                    };
                    let b = self.take(n)?.to_vec();
                    // Protocol-2 "strings" are bytes; state dicts use them only as plain text.
                    self.stack.push(match (op, String::from_utf8(b)) {
                        (b'T' | b'U', Ok(s)) => Value::Str(s),
                        (_, Ok(s)) => Value::Bytes(s.into_bytes()),
                        (_, Err(e)) => Value::Bytes(e.into_bytes()),
                    });
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a => {
                    let n = self.uint(1)? as usize;
                    if n > 8 {
                        return Err(ErrorKind::Pickle(format!("integer of {n} bytes at offset {at}")));
                    }
                    let bytes = self.take(n)?;
                    let mut v: i64 = bytes.iter().rev().fold(0i64, |v, &b| (v << 8) | b as i64);
                    if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Value::Int(v));
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'G' => {
                    let b = self.take(8)?;
                    self.stack.push(Value::Float(f64::from_be_bytes(b.try_into().expect("8 bytes"))));
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(Value::PersistentId(Box::new(pid)));
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = reduce(func, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    let _state = self.pop()?;
                    match self.top()? {
                        // OrderedDict._metadata, parameter state: not needed.
                        Value::Dict(_) | Value::Tensor(_) => {}
                        other => return Err(ErrorKind::Pickle(format!("BUILD on {} at offset {at}", kind(other)))),
                    }
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                other => {
                    return Err(ErrorKind::Pickle(format!(
                        "opcode {other:#04x} at offset {at} is not used by state dicts"
                    )));
                }
            }
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::Int(_) => "an int",
        Value::Float(_) => "a float",
        Value::Str(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "a tuple",
        Value::List(_) => "a list",
        Value::Dict(_) => "a dict",
        Value::Global(_) => "a global",
        Value::PersistentId(_) => "a persistent id",
        Value::Tensor(_) => "a tensor",
    }
}

fn tuple_items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Tuple(t) => Some(&t.items),
        _ => None,
    }
}

fn ints(v: &Value) -> Option<Vec<u64>> {
    tuple_items(v)?
        .iter()
        .map(|x| x.as_int().and_then(|i| u64::try_from(i).ok()))
        .collect()
}

/// Applies an allowed callable to its arguments, as data.
fn reduce(func: Value, args: Value) -> Result<Value, ErrorKind> {
    let Value::Global(name) = func else {
        return Err(ErrorKind::Pickle(format!("REDUCE on {}, not a global", kind(&func))));
    };
    let args_list = tuple_items(&args).ok_or_else(|| ErrorKind::Pickle(format!("{name}: arguments are not a tuple")))?;
    match name.as_str() {
        "collections.OrderedDict" if args_list.is_empty() => Ok(Value::Dict(items(vec![])?)),
        "torch._utils._rebuild_tensor_v2" => rebuild_tensor(args_list),
        "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => match args_list.first() {
            Some(t @ Value::Tensor(_)) => Ok(t.clone()),
            _ => Err(ErrorKind::Pickle(format!("{name}: first argument is not a tensor"))),
        },
        _ => Err(ErrorKind::Pickle(format!("refusing to call {name}"))),
    }
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, ...)`.
fn rebuild_tensor(args: &[Value]) -> Result<Value, ErrorKind> {
    let bad = |what: &str| ErrorKind::Pickle(format!("_rebuild_tensor_v2: {what}"));
    let [Value::PersistentId(pid), offset, size, stride, ..] = args else {
        return Err(bad("expected (storage, offset, size, stride, ...)"));
    };
    let pid = tuple_items(pid).ok_or_else(|| bad("storage id is not a tuple"))?;
    let [Value::Str(tag), Value::Global(storage_type), key, _location, numel] = pid else {
        return Err(bad("storage id is not ('storage', type, key, location, numel)"));
    };
    if tag != "storage" {
        return Err(bad(&format!("persistent id tag '{tag}'")));
    }
    let key = match key {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => return Err(bad("storage key is not a string")),
    };
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(bad(&format!("storage key '{key}' is not a plain name")));
    }
    let shape = ints(size).ok_or_else(|| bad("size is not a tuple of non-negative ints"))?;
    let stride = ints(stride).ok_or_else(|| bad("stride is not a tuple of non-negative ints"))?;
    if shape.len() != stride.len() {
        return Err(bad("size and stride differ in length"));
    }
    Ok(Value::Tensor(TensorRef {
        storage_key: key,
        storage_type: storage_type.rsplit('.').next().unwrap_or_default().to_string(),
        storage_numel: numel
            .as_int()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| bad("storage size"))?,
        offset: offset.as_int().and_then(|n| u64::try_from(n).ok()).ok_or_else(|| bad("offset"))?,
        shape,
        stride,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_execution_is_refused() {
        // pickle.dumps(os.system) style: GLOBAL posix system, REDUCE.
        let p = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
        let e = load(p).unwrap_err();
        assert!(e.to_string().contains("refusing global posix.system"), "{e}");
    }

    #[test]
    fn deep_nesting_and_memo_bombs_are_refused() {
        let mut deep = b"\x80\x02".to_vec();
        for _ in 0..200 {
            deep.extend(b"]"); // EMPTY_LIST
        }
        for _ in 0..199 {
            deep.extend(b"a"); // APPEND
        }
        deep.push(b'.');
        assert!(load(&deep).unwrap_err().to_string().contains("nested deeper"));
        // x = []; then repeatedly x = (x, x) via memo.
        let mut bomb = b"\x80\x02]q\x00".to_vec();
        for _ in 0..40 {
            bomb.extend(b"h\x00h\x00\x86q\x00");
        }
        bomb.push(b'.');
        let e = load(&bomb).unwrap_err();
        assert!(matches!(e, ErrorKind::Pickle(_)), "{e}");
    }

    #[test]
    fn truncated_pickles_are_errors() {
        assert!(matches!(load(b"\x80\x02X\xff\xff\x00\x00ab"), Err(ErrorKind::TooLarge { .. })));
        assert!(matches!(load(b"\x80\x02}"), Err(ErrorKind::Truncated(_))));
    }
}
