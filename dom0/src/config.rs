//! xl domain configuration files: the syntax of Xen's `xl.cfg` (`key = value` settings,
//! `#` comments, strings in double or single quotes, integers, lists) and the keys dom0's
//! builder uses.
//!
//! Syntax, as libxlu reads it: a setting is `key = value` (or `key += value`), ended by a
//! newline or `;`. A value is a string (`"..."` with C escapes, or `'...'` taken as is;
//! neither spans lines), an integer (decimal or `0x` hex), a bare word, or a list
//! `[ v, v, ... ]` that may span lines and end with a comma. Lists are accepted wherever a
//! key we do not use takes them.
//!
//! Keys: `name` (required), `kernel` (required), `memory` (MiB, default 128), `maxmem`
//! (MiB, default = memory), `vcpus` (default 1), `cmdline` (or, as in xl, `root` and
//! `extra` joined as `root=<root> <extra>`), `ramdisk`, `on_poweroff` and `on_crash`
//! (`destroy`, the default, or `preserve`), `max_event_channels` (the highest event channel
//! port the guest may use, 1 to 4095; default 1023 as in xl), `max_grant_frames` (grant-table
//! frames, 1 to 256) and `max_maptrack_frames` (maptrack frames of 256 handles, 1 to 1024),
//! both defaulting to the hypervisor's (64 and 64), `weight` (1 to 65535) and `cap`
//! (percent of one CPU, 0 for none, at most 100 per vcpu) for the credit scheduler. Any
//! other key is warned about and ignored.
//!
//! Every problem is one [`ConfigError`] naming its line; the input is untrusted (it arrives
//! in a boot module), so nothing in it can make the parser panic, loop or recurse deeply.
#![forbid(unsafe_code)]

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use hypercall_abi::domctl::{DOMAIN_NAME_LEN, MAX_VCPUS};
use hypercall_abi::start_info::MAX_GUEST_CMDLINE;

/// `max_event_channels` when the file gives none (xl's default).
pub const DEFAULT_MAX_EVENT_CHANNELS: u32 = 1023;
/// Highest `max_event_channels`: the last port of the 2-level ABI.
pub const MAX_EVENT_CHANNELS: u32 = 4095;

/// Highest `max_grant_frames` (the hypervisor's hard limit).
pub const MAX_GRANT_FRAMES: u32 = 256;
/// Highest `max_maptrack_frames` (the hypervisor's hard limit).
pub const MAX_MAPTRACK_FRAMES: u32 = 1024;

/// `memory` when the file gives none (xl's default).
pub const DEFAULT_MEMORY_MIB: u64 = 128;
/// Most memory a domain may be given, in MiB (1 TiB: far past any machine this runs on,
/// small enough that page counts never overflow).
pub const MAX_MEMORY_MIB: u64 = 1 << 20;
/// Longest `kernel` / `ramdisk` name.
pub const MAX_FILE_NAME: usize = 255;
/// Deepest list nesting accepted.
pub const MAX_LIST_DEPTH: usize = 8;
/// Most items in one list.
pub const MAX_LIST_ITEMS: usize = 64;
/// Unknown-key warnings kept (the rest are counted).
pub const MAX_WARNINGS: usize = 16;

/// What to do with a domain that has stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAction {
    /// Destroy it (every frame back).
    Destroy,
    /// Keep it, shut down, for inspection; `xl destroy` removes it.
    Preserve,
    /// Destroy it and create it again from the same config file.
    Restart,
}

impl StopAction {
    /// The word in a config file.
    pub const fn word(self) -> &'static str {
        match self {
            StopAction::Destroy => "destroy",
            StopAction::Preserve => "preserve",
            StopAction::Restart => "restart",
        }
    }
}

/// A domain's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Domain name: 1 to 31 printable ASCII characters, no spaces, not all digits.
    pub name: String,
    /// Boot module or archive member holding the kernel.
    pub kernel: String,
    /// Boot module or archive member given to the kernel as its initrd.
    pub ramdisk: Option<String>,
    /// Memory at start, MiB.
    pub memory_mib: u64,
    /// Most memory, MiB (at least `memory_mib`).
    pub maxmem_mib: u64,
    /// vCPUs (1 to [`MAX_VCPUS`]).
    pub vcpus: u32,
    /// Kernel command line (at most 1023 bytes).
    pub cmdline: String,
    /// After a shutdown that is not a crash.
    pub on_poweroff: StopAction,
    /// After a crash.
    pub on_crash: StopAction,
    /// Highest event channel port (1 to [`MAX_EVENT_CHANNELS`]).
    pub max_event_channels: u32,
    /// Grant-table frames (1 to [`MAX_GRANT_FRAMES`]; 0: the hypervisor's default).
    pub max_grant_frames: u32,
    /// Maptrack frames (1 to [`MAX_MAPTRACK_FRAMES`]; 0: the hypervisor's default).
    pub max_maptrack_frames: u32,
    /// The credit scheduler's weight (`weight=`, 1 to 65535), if given.
    pub weight: Option<u16>,
    /// The credit scheduler's cap (`cap=`, percent of one CPU, 0 for none), if given.
    pub cap: Option<u16>,
    /// The EDF reservation (`period=` and `budget=` in µs, `extratime=`), applied when the
    /// RTDS scheduler runs: (period, budget, extra time).
    pub rtds: Option<(u32, u32, bool)>,
    /// The CPUs its vCPUs may run on (`cpus = "0-1"`), a bit each; `None`: any.
    pub cpus: Option<u64>,
    /// Virtual disks (`disk = [...]`), in order.
    pub disks: Vec<DiskSpec>,
    /// Network interfaces (`vif = [...]`), in order (devid 0, 1, ...).
    pub vifs: Vec<VifSpec>,
}

impl Config {
    /// Pages of memory at start.
    pub fn nr_pages(&self) -> u64 {
        self.memory_mib << 8
    }

    /// Most pages.
    pub fn max_pages(&self) -> u64 {
        self.maxmem_mib << 8
    }
}

/// A problem with a config file; `line` is 1-based, `None` for the file as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where.
    pub line: Option<usize>,
    /// What, e.g. `memory: expected a number of MiB, got "lots"`.
    pub message: String,
}

impl ConfigError {
    fn at(line: usize, message: impl Into<String>) -> Self {
        ConfigError {
            line: Some(line),
            message: message.into(),
        }
    }

    /// The error as `<file>:<line>: <message>`.
    pub fn in_file<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        InFile {
            file,
            line: self.line,
            message: &self.message,
        }
    }
}

/// A key the parser does not use (one warning each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Its line.
    pub line: usize,
    /// The key.
    pub key: String,
}

impl Warning {
    /// The warning as `<file>:<line>: warning: unknown key '<key>' ignored`.
    pub fn in_file<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        WarningInFile { file, w: self }
    }
}

struct InFile<'a> {
    file: &'a str,
    line: Option<usize>,
    message: &'a str,
}

impl fmt::Display for InFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

struct WarningInFile<'a> {
    file: &'a str,
    w: &'a Warning,
}

impl fmt::Display for WarningInFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: warning: unknown key '{}' ignored",
            self.file, self.w.line, self.w.key
        )
    }
}

/// A parsed file: the configuration and the warnings about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The configuration.
    pub config: Config,
    /// Unknown keys, at most [`MAX_WARNINGS`].
    pub warnings: Vec<Warning>,
    /// Unknown keys past the first [`MAX_WARNINGS`].
    pub more_warnings: usize,
}

/// One value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Str(String),
    Int(u64),
    Word(String),
    /// The items, each with its line.
    List(Vec<(usize, Value)>),
}

impl fmt::Display for Value {
    /// As the user wrote it (roughly), for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "\"{}\"", Printable(s)),
            Value::Int(n) => write!(f, "{n}"),
            Value::Word(w) => write!(f, "{}", Printable(w)),
            Value::List(_) => f.write_str("a list"),
        }
    }
}

/// Text with control characters shown as `\xNN` (a config cannot drive the terminal).
struct Printable<'a>(&'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "\\x{:02x}", u32::from(c))?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// A byte shown in an error: the character if printable ASCII, else `\xNN`.
struct Byte(u8);

impl fmt::Display for Byte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0x21..=0x7e => write!(f, "'{}'", char::from(self.0)),
            b => write!(f, "byte \\x{b:02x}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Str(String),
    Int(u64),
    Assign,
    Append,
    Open,
    Close,
    Comma,
    Newline,
    Semicolon,
    Eof,
}

/// Splits the text into tokens, tracking lines.
struct Lexer<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a [u8]) -> Self {
        Lexer {
            text,
            at: 0,
            line: 1,
        }
    }

    fn peek_byte(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    /// The next token and the line it starts on.
    fn next(&mut self) -> Result<(Token, usize), ConfigError> {
        // Blanks and comments.
        loop {
            match self.peek_byte() {
                Some(b' ' | b'\t' | b'\r') => self.at += 1,
                Some(b'#') => {
                    while !matches!(self.peek_byte(), None | Some(b'\n')) {
                        self.at += 1;
                    }
                }
                _ => break,
            }
        }
        let line = self.line;
        let Some(b) = self.peek_byte() else {
            return Ok((Token::Eof, line));
        };
        self.at += 1;
        let token = match b {
            b'\n' => {
                self.line += 1;
                Token::Newline
            }
            b';' => Token::Semicolon,
            b'=' => Token::Assign,
            b'+' if self.peek_byte() == Some(b'=') => {
                self.at += 1;
                Token::Append
            }
            b'[' => Token::Open,
            b']' => Token::Close,
            b',' => Token::Comma,
            b'"' => Token::Str(self.string(b'"', line)?),
            b'\'' => Token::Str(self.string(b'\'', line)?),
            b'0'..=b'9' => Token::Int(self.number(b, line)?),
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                let start = self.at - 1;
                while matches!(
                    self.peek_byte(),
                    Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.')
                ) {
                    self.at += 1;
                }
                // Only ASCII was taken, so this is valid UTF-8.
                let word = core::str::from_utf8(&self.text[start..self.at]).unwrap_or("");
                Token::Ident(word.to_string())
            }
            other => {
                return Err(ConfigError::at(
                    line,
                    alloc::format!("unexpected {}", Byte(other)),
                ))
            }
        };
        Ok((token, line))
    }

    /// A quoted string; the opening quote is consumed. Double quotes take C escapes.
    fn string(&mut self, quote: u8, line: usize) -> Result<String, ConfigError> {
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek_byte() else {
                return Err(ConfigError::at(line, "unterminated string"));
            };
            self.at += 1;
            match b {
                b'\n' => return Err(ConfigError::at(line, "unterminated string")),
                _ if b == quote => break,
                b'\\' if quote == b'"' => {
                    let Some(e) = self.peek_byte() else {
                        return Err(ConfigError::at(line, "unterminated string"));
                    };
                    self.at += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'\\' | b'"' | b'\'' => e,
                        b'x' => self.hex_escape(line)?,
                        _ => {
                            return Err(ConfigError::at(
                                line,
                                alloc::format!("unknown escape '\\' followed by {}", Byte(e)),
                            ))
                        }
                    });
                }
                _ => out.push(b),
            }
        }
        if out.contains(&0) {
            return Err(ConfigError::at(line, "string holds a NUL"));
        }
        String::from_utf8(out).map_err(|_| ConfigError::at(line, "string is not valid UTF-8"))
    }

    /// The two hex digits of a `\xHH` escape.
    fn hex_escape(&mut self, line: usize) -> Result<u8, ConfigError> {
        let digits = self.text.get(self.at..self.at + 2);
        let value = digits
            .and_then(|d| core::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 16).ok())
            .ok_or_else(|| ConfigError::at(line, "\\x needs two hex digits"))?;
        self.at += 2;
        Ok(value)
    }

    /// An integer starting with digit `first` (consumed): decimal or `0x` hex.
    fn number(&mut self, first: u8, line: usize) -> Result<u64, ConfigError> {
        let start = self.at - 1;
        while matches!(
            self.peek_byte(),
            Some(b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'.')
        ) {
            self.at += 1;
        }
        let text = core::str::from_utf8(&self.text[start..self.at]).unwrap_or("");
        let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            Some(hex) if first == b'0' => u64::from_str_radix(hex, 16),
            _ => text.parse::<u64>(),
        };
        parsed.map_err(|e| {
            let why = match e.kind() {
                core::num::IntErrorKind::PosOverflow => "is too large",
                _ => "is not a number",
            };
            ConfigError::at(line, alloc::format!("'{}' {why}", Printable(text)))
        })
    }
}

/// Reads settings one by one.
struct Parser<'a> {
    lex: Lexer<'a>,
    /// A token read ahead.
    ahead: Option<(Token, usize)>,
}

impl Parser<'_> {
    fn next(&mut self) -> Result<(Token, usize), ConfigError> {
        match self.ahead.take() {
            Some(t) => Ok(t),
            None => self.lex.next(),
        }
    }

    /// The line of the token read ahead (after [`Parser::peek`]).
    fn line(&self) -> usize {
        self.ahead.as_ref().map_or(0, |a| a.1)
    }

    fn peek(&mut self) -> Result<Token, ConfigError> {
        let (token, line) = self.next()?;
        self.ahead = Some((token.clone(), line));
        Ok(token)
    }

    /// The next setting: `(line, key, appending, value)`, or `None` at the end.
    fn setting(&mut self) -> Result<Option<(usize, String, bool, Value)>, ConfigError> {
        let (key, line) = loop {
            match self.next()? {
                (Token::Newline | Token::Semicolon, _) => continue,
                (Token::Eof, _) => return Ok(None),
                (Token::Ident(key), line) => break (key, line),
                (other, line) => {
                    return Err(ConfigError::at(
                        line,
                        alloc::format!(
                            "expected a setting (key = value), found {}",
                            describe(&other)
                        ),
                    ))
                }
            }
        };
        let append = match self.next()? {
            (Token::Assign, _) => false,
            (Token::Append, _) => true,
            (other, at) => {
                return Err(ConfigError::at(
                    at,
                    alloc::format!("expected '=' after '{key}', found {}", describe(&other)),
                ))
            }
        };
        let value = self.value(&key, 0)?;
        match self.next()? {
            (Token::Newline | Token::Semicolon | Token::Eof, _) => {
                Ok(Some((line, key, append, value)))
            }
            (other, at) => Err(ConfigError::at(
                at,
                alloc::format!(
                    "{key}: expected the end of the line after the value, found {}",
                    describe(&other)
                ),
            )),
        }
    }

    /// One value; `depth` is the list nesting so far.
    fn value(&mut self, key: &str, depth: usize) -> Result<Value, ConfigError> {
        match self.next()? {
            (Token::Str(s), _) => Ok(Value::Str(s)),
            (Token::Int(n), _) => Ok(Value::Int(n)),
            (Token::Ident(w), _) => Ok(Value::Word(w)),
            (Token::Open, line) => {
                if depth >= MAX_LIST_DEPTH {
                    return Err(ConfigError::at(
                        line,
                        alloc::format!("{key}: lists nested too deeply"),
                    ));
                }
                self.list_rest(key, depth + 1, line)
            }
            (other, line) => Err(ConfigError::at(
                line,
                alloc::format!("{key}: expected a value, found {}", describe(&other)),
            )),
        }
    }

    /// The rest of a list after `[`: values separated by commas, newlines anywhere.
    fn list_rest(
        &mut self,
        key: &str,
        depth: usize,
        open_line: usize,
    ) -> Result<Value, ConfigError> {
        let mut want_value = true;
        let mut items = Vec::new();
        loop {
            self.skip_newlines()?;
            match self.peek()? {
                Token::Close => {
                    self.next()?;
                    return Ok(Value::List(items));
                }
                Token::Eof => {
                    return Err(ConfigError::at(
                        open_line,
                        alloc::format!("{key}: list is not closed with ']'"),
                    ))
                }
                Token::Comma if !want_value => {
                    self.next()?;
                    want_value = true;
                }
                _ if want_value => {
                    let line = self.line();
                    if items.len() >= MAX_LIST_ITEMS {
                        return Err(ConfigError::at(line, alloc::format!("{key}: more than {MAX_LIST_ITEMS} items")));
                    }
                    items.push((line, self.value(key, depth)?));
                    want_value = false;
                }
                _ => {
                    let (other, line) = self.next()?;
                    return Err(ConfigError::at(
                        line,
                        alloc::format!(
                            "{key}: expected ',' or ']' in the list, found {}",
                            describe(&other)
                        ),
                    ));
                }
            }
        }
    }

    /// Skips newlines (not `;`: a statement end inside a list is an error).
    fn skip_newlines(&mut self) -> Result<(), ConfigError> {
        while self.peek()? == Token::Newline {
            self.next()?;
        }
        Ok(())
    }
}

/// A token, for "found ..." in errors.
fn describe(t: &Token) -> String {
    match t {
        Token::Ident(w) => alloc::format!("'{}'", Printable(w)),
        Token::Str(s) => alloc::format!("\"{}\"", Printable(s)),
        Token::Int(n) => alloc::format!("{n}"),
        Token::Assign => "'='".to_string(),
        Token::Append => "'+='".to_string(),
        Token::Open => "'['".to_string(),
        Token::Close => "']'".to_string(),
        Token::Comma => "','".to_string(),
        Token::Newline => "the end of the line".to_string(),
        Token::Semicolon => "';'".to_string(),
        Token::Eof => "the end of the file".to_string(),
    }
}

/// The settings the builder uses, as found.
#[derive(Default)]
struct Found {
    name: Option<(usize, String)>,
    kernel: Option<(usize, String)>,
    ramdisk: Option<(usize, String)>,
    memory: Option<(usize, u64)>,
    maxmem: Option<(usize, u64)>,
    vcpus: Option<(usize, u32)>,
    cmdline: Option<(usize, String)>,
    root: Option<(usize, String)>,
    extra: Option<(usize, String)>,
    on_poweroff: Option<(usize, StopAction)>,
    on_crash: Option<(usize, StopAction)>,
    max_event_channels: Option<(usize, u32)>,
    max_grant_frames: Option<(usize, u32)>,
    max_maptrack_frames: Option<(usize, u32)>,
    weight: Option<(usize, u16)>,
    cap: Option<(usize, u16)>,
    period: Option<(usize, u32)>,
    budget: Option<(usize, u32)>,
    extratime: Option<(usize, bool)>,
    cpus: Option<(usize, u64)>,
    /// `disk` items, with their lines.
    disks: Vec<(usize, DiskSpec)>,
    /// The line `disk =` was set on (`+=` may follow it).
    disk_set: Option<usize>,
    /// `vif` items, with their lines.
    vifs: Vec<(usize, VifSpec)>,
    /// The line `vif =` was set on.
    vif_set: Option<usize>,
}

/// Stores `value` unless the key was set before.
fn set_once<T>(
    slot: &mut Option<(usize, T)>,
    key: &str,
    line: usize,
    value: T,
) -> Result<(), ConfigError> {
    if let Some((first, _)) = slot {
        return Err(ConfigError::at(
            line,
            alloc::format!("{key}: set again (first on line {first})"),
        ));
    }
    *slot = Some((line, value));
    Ok(())
}

fn string_value(key: &str, line: usize, value: Value, what: &str) -> Result<String, ConfigError> {
    match value {
        Value::Str(s) => Ok(s),
        other => Err(ConfigError::at(
            line,
            alloc::format!("{key}: expected {what} in quotes, got {other}"),
        )),
    }
}

fn file_name(key: &str, line: usize, value: Value) -> Result<String, ConfigError> {
    let s = string_value(key, line, value, "a boot file name")?;
    if s.is_empty() || s.len() > MAX_FILE_NAME || s.chars().any(char::is_control) {
        return Err(ConfigError::at(
            line,
            alloc::format!(
                "{key}: \"{}\" is not a boot file name (1 to {MAX_FILE_NAME} printable characters)",
                Printable(&s)
            ),
        ));
    }
    Ok(s)
}

fn domain_name(line: usize, value: Value) -> Result<String, ConfigError> {
    let s = string_value("name", line, value, "a domain name")?;
    let printable = s.bytes().all(|b| (0x21..=0x7e).contains(&b));
    let problem = if s.is_empty() {
        Some("is empty")
    } else if s.len() >= DOMAIN_NAME_LEN {
        Some("is longer than 31 characters")
    } else if !printable {
        Some("may hold only printable ASCII without spaces")
    } else if s.bytes().all(|b| b.is_ascii_digit()) {
        Some("is all digits, which would read as a domain id")
    } else if s == crate::xl::DOM0_NAME {
        Some("is dom0's")
    } else {
        None
    };
    match problem {
        Some(why) => Err(ConfigError::at(
            line,
            alloc::format!("name: \"{}\" {why}", Printable(&s)),
        )),
        None => Ok(s),
    }
}

fn mib(key: &str, line: usize, value: Value) -> Result<u64, ConfigError> {
    match value {
        Value::Int(n) if (1..=MAX_MEMORY_MIB).contains(&n) => Ok(n),
        Value::Int(n) => Err(ConfigError::at(
            line,
            alloc::format!("{key}: {n} MiB is out of range (1 to {MAX_MEMORY_MIB})"),
        )),
        other => Err(ConfigError::at(
            line,
            alloc::format!("{key}: expected a number of MiB, got {other}"),
        )),
    }
}

fn stop_action(key: &str, line: usize, value: Value) -> Result<StopAction, ConfigError> {
    let word = match &value {
        Value::Str(s) | Value::Word(s) => s.as_str(),
        _ => "",
    };
    match word {
        "destroy" => Ok(StopAction::Destroy),
        "preserve" => Ok(StopAction::Preserve),
        "restart" => Ok(StopAction::Restart),
        "rename-restart" | "coredump-destroy" | "coredump-restart" | "soft-reset" => Err(ConfigError::at(
            line,
            alloc::format!("{key}: \"{word}\" is not supported here (destroy, preserve or restart)"),
        )),
        _ => Err(ConfigError::at(
            line,
            alloc::format!("{key}: expected destroy, preserve or restart, got {value}"),
        )),
    }
}

/// Parses a config file.
pub fn parse(text: &[u8]) -> Result<Parsed, ConfigError> {
    let mut parser = Parser {
        lex: Lexer::new(text),
        ahead: None,
    };
    let mut found = Found::default();
    let mut warnings = Vec::new();
    let mut more_warnings = 0;
    while let Some((line, key, append, value)) = parser.setting()? {
        let known = matches!(
            key.as_str(),
            "name"
                | "kernel"
                | "ramdisk"
                | "memory"
                | "maxmem"
                | "vcpus"
                | "cmdline"
                | "root"
                | "extra"
                | "on_poweroff"
                | "on_crash"
                | "max_event_channels"
                | "max_grant_frames"
                | "max_maptrack_frames"
                | "weight"
                | "cap"
                | "period"
                | "budget"
                | "extratime"
                | "cpus"
                | "disk"
                | "vif"
        );
        if !known {
            if warnings.len() < MAX_WARNINGS {
                warnings.push(Warning { line, key });
            } else {
                more_warnings += 1;
            }
            continue;
        }
        if key == "disk" {
            disks(&mut found, line, append, value)?;
            continue;
        }
        if key == "vif" {
            vifs(&mut found, line, append, value)?;
            continue;
        }
        if append {
            return Err(ConfigError::at(
                line,
                alloc::format!("{key}: '+=' only appends to lists"),
            ));
        }
        let f = &mut found;
        match key.as_str() {
            "name" => set_once(&mut f.name, &key, line, domain_name(line, value)?)?,
            "kernel" => set_once(&mut f.kernel, &key, line, file_name(&key, line, value)?)?,
            "ramdisk" => set_once(&mut f.ramdisk, &key, line, file_name(&key, line, value)?)?,
            "memory" => set_once(&mut f.memory, &key, line, mib(&key, line, value)?)?,
            "maxmem" => set_once(&mut f.maxmem, &key, line, mib(&key, line, value)?)?,
            "vcpus" => {
                let n = match value {
                    Value::Int(n) if (1..=u64::from(MAX_VCPUS)).contains(&n) => n as u32,
                    other => {
                        return Err(ConfigError::at(
                            line,
                            alloc::format!(
                                "vcpus: expected a number from 1 to {MAX_VCPUS}, got {other}"
                            ),
                        ))
                    }
                };
                set_once(&mut f.vcpus, &key, line, n)?
            }
            "max_event_channels" => {
                let n = match value {
                    Value::Int(n) if (1..=u64::from(MAX_EVENT_CHANNELS)).contains(&n) => n as u32,
                    other => {
                        return Err(ConfigError::at(
                            line,
                            alloc::format!(
                                "max_event_channels: expected a number from 1 to {MAX_EVENT_CHANNELS}, got {other}"
                            ),
                        ))
                    }
                };
                set_once(&mut f.max_event_channels, &key, line, n)?
            }
            "max_grant_frames" | "max_maptrack_frames" => {
                let max = if key == "max_grant_frames" { MAX_GRANT_FRAMES } else { MAX_MAPTRACK_FRAMES };
                let n = match value {
                    Value::Int(n) if (1..=u64::from(max)).contains(&n) => n as u32,
                    other => {
                        return Err(ConfigError::at(
                            line,
                            alloc::format!("{key}: expected a number from 1 to {max}, got {other}"),
                        ))
                    }
                };
                let slot = if key == "max_grant_frames" { &mut f.max_grant_frames } else { &mut f.max_maptrack_frames };
                set_once(slot, &key, line, n)?
            }
            "weight" => {
                // libxl's range for the credit scheduler.
                let n = match value {
                    Value::Int(n) if (1..=65535).contains(&n) => n as u16,
                    other => return Err(ConfigError::at(line, alloc::format!("weight: expected a number from 1 to 65535, got {other}"))),
                };
                set_once(&mut f.weight, &key, line, n)?
            }
            "cap" => {
                // Percent of one CPU, 0 for none; checked against vcpus once all is read.
                let n = match value {
                    Value::Int(n) if n <= u64::from(MAX_VCPUS) * 100 => n as u16,
                    other => return Err(ConfigError::at(line, alloc::format!("cap: expected a percentage of one CPU (0 for none), got {other}"))),
                };
                set_once(&mut f.cap, &key, line, n)?
            }
            "period" | "budget" => {
                // Microseconds, as `xl sched-rtds` takes them; checked together below.
                let n = match value {
                    Value::Int(n) if n <= u64::from(u32::MAX) => n as u32,
                    other => return Err(ConfigError::at(line, alloc::format!("{key}: expected a number of microseconds, got {other}"))),
                };
                let slot = if key == "period" { &mut f.period } else { &mut f.budget };
                set_once(slot, &key, line, n)?
            }
            "extratime" => {
                let on = match value {
                    Value::Int(0) => false,
                    Value::Int(1) => true,
                    other => return Err(ConfigError::at(line, alloc::format!("extratime: expected 0 or 1, got {other}"))),
                };
                set_once(&mut f.extratime, &key, line, on)?
            }
            "cmdline" => {
                let s = string_value(&key, line, value, "a command line")?;
                set_once(&mut f.cmdline, &key, line, s)?
            }
            "root" => {
                let s = string_value(&key, line, value, "a root device")?;
                set_once(&mut f.root, &key, line, s)?
            }
            "extra" => {
                let s = string_value(&key, line, value, "a command line")?;
                set_once(&mut f.extra, &key, line, s)?
            }
            "cpus" => {
                // xl's hard affinity for every vCPU: a CPU list in a string ("0-1", "all"),
                // or one CPU as a number.
                let map = match value {
                    Value::Int(n) if n <= u64::from(crate::cpulist::MAX_CPU) => 1u64 << n,
                    Value::Str(ref s) => crate::cpulist::parse(s).map_err(|e| ConfigError::at(line, alloc::format!("cpus: {e}")))?,
                    other => return Err(ConfigError::at(line, alloc::format!("cpus: expected a CPU list such as \"0-1\", got {other}"))),
                };
                set_once(&mut f.cpus, &key, line, map)?
            }
            "on_poweroff" => set_once(
                &mut f.on_poweroff,
                &key,
                line,
                stop_action(&key, line, value)?,
            )?,
            _ => set_once(&mut f.on_crash, &key, line, stop_action(&key, line, value)?)?,
        }
    }
    finish(found, warnings, more_warnings)
}

/// `disk = [ "spec", ... ]` (or `disk += [...]` after it): each item parsed, no virtual
/// device named twice.
fn disks(found: &mut Found, line: usize, append: bool, value: Value) -> Result<(), ConfigError> {
    match (append, found.disk_set) {
        (false, Some(first)) => return Err(ConfigError::at(line, alloc::format!("disk: set twice (first on line {first}); use += to add"))),
        (true, None) => return Err(ConfigError::at(line, "disk: '+=' before 'disk ='")),
        (false, None) => found.disk_set = Some(line),
        (true, Some(_)) => {}
    }
    let Value::List(items) = value else {
        return Err(ConfigError::at(line, alloc::format!("disk: expected a list of disk specifications, got {value}")));
    };
    for (at, item) in items {
        let Value::Str(text) = item else {
            return Err(ConfigError::at(at, alloc::format!("disk: expected a quoted disk specification, got {item}")));
        };
        let spec = disk::parse(&text).map_err(|e| ConfigError::at(at, alloc::format!("disk \"{}\": {e}", Printable(&text))))?;
        if let Some((first, _)) = found.disks.iter().find(|(_, d)| d.vdev == spec.vdev) {
            return Err(ConfigError::at(at, alloc::format!("disk: {} given twice (first on line {first})", spec.vdev)));
        }
        found.disks.push((at, spec));
    }
    Ok(())
}

/// `vif = [ "spec", ... ]` (or `vif += [...]`): each item parsed, numbered in order, no
/// MAC given twice.
fn vifs(found: &mut Found, line: usize, append: bool, value: Value) -> Result<(), ConfigError> {
    match (append, found.vif_set) {
        (false, Some(first)) => return Err(ConfigError::at(line, alloc::format!("vif: set twice (first on line {first}); use += to add"))),
        (true, None) => return Err(ConfigError::at(line, "vif: '+=' before 'vif ='")),
        (false, None) => found.vif_set = Some(line),
        (true, Some(_)) => {}
    }
    let Value::List(items) = value else {
        return Err(ConfigError::at(line, alloc::format!("vif: expected a list of interface specifications, got {value}")));
    };
    for (at, item) in items {
        let Value::Str(text) = item else {
            return Err(ConfigError::at(at, alloc::format!("vif: expected a quoted interface specification, got {item}")));
        };
        let devid = found.vifs.len() as u32;
        let spec = vif::parse(&text, devid).map_err(|e| ConfigError::at(at, alloc::format!("vif \"{}\": {e}", Printable(&text))))?;
        if let Some((first, _)) = found.vifs.iter().find(|(_, v)| v.mac.is_some() && v.mac == spec.mac) {
            return Err(ConfigError::at(at, alloc::format!("vif: mac {} given twice (first on line {first})", spec.mac.unwrap_or_default())));
        }
        found.vifs.push((at, spec));
    }
    Ok(())
}

/// Checks what was found as a whole and fills the defaults.
fn finish(
    found: Found,
    warnings: Vec<Warning>,
    more_warnings: usize,
) -> Result<Parsed, ConfigError> {
    let missing = |key: &str| ConfigError {
        line: None,
        message: alloc::format!("{key}: missing (required)"),
    };
    let (_, name) = found.name.ok_or_else(|| missing("name"))?;
    let (_, kernel) = found.kernel.ok_or_else(|| missing("kernel"))?;
    let memory_mib = found.memory.map_or(DEFAULT_MEMORY_MIB, |(_, m)| m);
    let maxmem_mib = match found.maxmem {
        Some((line, m)) if m < memory_mib => {
            return Err(ConfigError::at(
                line,
                alloc::format!("maxmem: {m} MiB is less than memory ({memory_mib} MiB)"),
            ))
        }
        Some((_, m)) => m,
        None => memory_mib,
    };
    // xl: cmdline wins; otherwise "root=<root> <extra>".
    let (cmdline_line, cmdline) = match (found.cmdline, found.root, found.extra) {
        (Some((line, c)), _, _) => (line, c),
        (None, root, extra) => {
            let mut c = String::new();
            let mut line = 0;
            if let Some((l, r)) = root {
                c.push_str("root=");
                c.push_str(&r);
                line = l;
            }
            if let Some((l, e)) = extra {
                if !c.is_empty() {
                    c.push(' ');
                }
                c.push_str(&e);
                line = line.max(l);
            }
            (line, c)
        }
    };
    if cmdline.len() >= MAX_GUEST_CMDLINE {
        return Err(ConfigError::at(
            cmdline_line,
            alloc::format!(
                "cmdline: {} bytes, longer than {}",
                cmdline.len(),
                MAX_GUEST_CMDLINE - 1
            ),
        ));
    }
    let vcpus = found.vcpus.map_or(1, |(_, v)| v);
    if let Some((line, cap)) = found.cap {
        if u32::from(cap) > vcpus * 100 {
            return Err(ConfigError::at(line, alloc::format!("cap: {cap} is out of range: from 0 to {} for {vcpus} vcpu(s)", vcpus * 100)));
        }
    }
    // xl's RTDS parameters: a period of at least 10 µs (default 10 ms), a budget from
    // 10 µs to the period (default 4 ms, Xen's), or 0 for no reservation.
    let rtds = if found.period.is_some() || found.budget.is_some() || found.extratime.is_some() {
        let period = found.period.map_or(10_000, |(_, p)| p);
        let budget = found.budget.map_or(4_000.min(period), |(_, b)| b);
        let line = found.period.or(found.budget).map(|(l, _)| l).or(found.extratime.map(|(l, _)| l)).unwrap_or(0);
        if period < 10 {
            return Err(ConfigError::at(line, alloc::format!("period: {period} us is too short (at least 10 us)")));
        }
        if budget != 0 && !(10..=period).contains(&budget) {
            return Err(ConfigError::at(line, alloc::format!("budget: {budget} us is out of range: from 10 us to the period ({period} us), or 0 for none")));
        }
        Some((period, budget, found.extratime.is_none_or(|(_, e)| e)))
    } else {
        None
    };
    Ok(Parsed {
        config: Config {
            name,
            kernel,
            ramdisk: found.ramdisk.map(|(_, r)| r),
            memory_mib,
            maxmem_mib,
            vcpus: found.vcpus.map_or(1, |(_, v)| v),
            cmdline,
            on_poweroff: found.on_poweroff.map_or(StopAction::Destroy, |(_, a)| a),
            on_crash: found.on_crash.map_or(StopAction::Destroy, |(_, a)| a),
            max_event_channels: found
                .max_event_channels
                .map_or(DEFAULT_MAX_EVENT_CHANNELS, |(_, n)| n),
            max_grant_frames: found.max_grant_frames.map_or(0, |(_, n)| n),
            max_maptrack_frames: found.max_maptrack_frames.map_or(0, |(_, n)| n),
            weight: found.weight.map(|(_, w)| w),
            cap: found.cap.map(|(_, c)| c),
            rtds,
            cpus: found.cpus.map(|(_, c)| c),
            disks: found.disks.into_iter().map(|(_, d)| d).collect(),
            vifs: found.vifs.into_iter().map(|(_, v)| v).collect(),
        },
        warnings,
        more_warnings,
    })
}

#[cfg(test)]
mod tests;

pub mod disk;
pub use disk::DiskSpec;
pub mod vif;
pub use vif::VifSpec;
