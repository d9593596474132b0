//! The console shell's commands: the table `help` prints and the parser.

use core::fmt;

use crate::bench;
use crate::xl::{self, XlCommand, XlUsage};

/// A parsed shell line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Nothing but whitespace: just prompt again.
    Empty,
    /// `help`: list the commands.
    Help,
    /// `info`: hypervisor, memory, uptime, domains, cpus.
    Info,
    /// `version`: xen_version facts.
    Version,
    /// `audit`: the microkernel checks its own accounting (`SYSCTL_AUDIT`).
    Audit,
    /// `shutdown`: power the machine off.
    Shutdown,
    /// `xl ...`: the toolstack.
    Xl(XlCommand<'a>),
    /// `bench-create N CONFIG`: the domain-creation benchmark (`crate::bench`).
    BenchCreate {
        /// Domains to create (1 to [`bench::MAX_COUNT`]).
        count: u32,
        /// The xl config they are created from.
        file: &'a str,
    },
    /// A `bench-create` line without a valid count and config.
    BenchUsage,
    /// An `xl` line that is not understood.
    XlUsage(XlUsage<'a>),
    /// `xenstore-ls/read/write/rm/watch`: the store, as dom0.
    Xenstore(XsCommand<'a>),
    /// A `xenstore-*` line with missing or extra words: the command's name.
    XenstoreUsage(&'static str),
    /// A known command given arguments it does not take.
    UnexpectedArgument {
        /// The command.
        command: &'static str,
        /// The first extra word.
        argument: &'a str,
    },
    /// A word that is not a command.
    Unknown(&'a str),
}

/// A `xenstore-*` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsCommand<'a> {
    /// `xenstore-ls [PATH]`: the tree under PATH (default `/`).
    Ls(&'a str),
    /// `xenstore-read PATH`.
    Read(&'a str),
    /// `xenstore-write PATH VALUE` (VALUE: the rest of the line, spaces kept).
    Write(&'a str, &'a str),
    /// `xenstore-rm PATH`.
    Rm(&'a str),
    /// `xenstore-watch PATH`: prints each event's path until Ctrl-].
    Watch(&'a str),
}

impl XsCommand<'_> {
    /// The command's name, which starts its error lines.
    pub fn name(&self) -> &'static str {
        match self {
            XsCommand::Ls(_) => "xenstore-ls",
            XsCommand::Read(_) => "xenstore-read",
            XsCommand::Write(..) => "xenstore-write",
            XsCommand::Rm(_) => "xenstore-rm",
            XsCommand::Watch(_) => "xenstore-watch",
        }
    }
}

/// The usage of each `xenstore-*` command.
pub fn xenstore_usage(name: &str) -> &'static str {
    match name {
        "xenstore-ls" => "xenstore-ls [PATH]",
        "xenstore-read" => "xenstore-read PATH",
        "xenstore-write" => "xenstore-write PATH VALUE",
        "xenstore-rm" => "xenstore-rm PATH",
        _ => "xenstore-watch PATH (Ctrl-] stops it)",
    }
}

/// Parses the words after a `xenstore-*` command; `rest` is the line after the path (the
/// value of `xenstore-write`).
fn parse_xenstore<'a>(name: &'static str, line: &'a str) -> Command<'a> {
    let mut words = line.split_whitespace();
    words.next();
    let path = words.next();
    let extra = words.next();
    let usage = Command::XenstoreUsage(name);
    match (name, path, extra) {
        ("xenstore-ls", None, _) => Command::Xenstore(XsCommand::Ls("/")),
        ("xenstore-ls", Some(p), None) => Command::Xenstore(XsCommand::Ls(p)),
        ("xenstore-read", Some(p), None) => Command::Xenstore(XsCommand::Read(p)),
        ("xenstore-rm", Some(p), None) => Command::Xenstore(XsCommand::Rm(p)),
        ("xenstore-watch", Some(p), None) => Command::Xenstore(XsCommand::Watch(p)),
        ("xenstore-write", Some(p), Some(_)) => {
            // The value is everything after the path, inner spaces kept.
            let after_path = line.trim_start();
            let after_path = after_path[name.len()..].trim_start();
            let value = after_path[p.len()..].trim();
            Command::Xenstore(XsCommand::Write(p, value))
        }
        _ => usage,
    }
}

/// One entry of the command table.
#[derive(Clone, Copy, Debug)]
pub struct CommandInfo {
    /// What the user types.
    pub name: &'static str,
    /// One line for `help`.
    pub summary: &'static str,
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: [CommandInfo; 12] = [
    CommandInfo {
        name: "help",
        summary: "list the commands",
    },
    CommandInfo {
        name: "info",
        summary: "hypervisor version, memory, uptime, domains and cpus",
    },
    CommandInfo {
        name: "version",
        summary: "hypervisor version details (xen_version)",
    },
    CommandInfo {
        name: "audit",
        summary: "the microkernel checks its accounting: frame references, event channels, grants",
    },
    CommandInfo {
        name: "xl",
        summary: "manage domains: create, list, destroy, pause... ('xl help' lists them)",
    },
    CommandInfo {
        name: "xenstore-ls",
        summary: "'xenstore-ls [PATH]': the store's tree under PATH, 'name = \"value\"' lines",
    },
    CommandInfo {
        name: "xenstore-read",
        summary: "'xenstore-read PATH': a node's value",
    },
    CommandInfo {
        name: "xenstore-write",
        summary: "'xenstore-write PATH VALUE': write a node (created with its parents)",
    },
    CommandInfo {
        name: "xenstore-rm",
        summary: "'xenstore-rm PATH': remove a node and everything under it",
    },
    CommandInfo {
        name: "xenstore-watch",
        summary: "'xenstore-watch PATH': print the path of each change under PATH until Ctrl-]",
    },
    CommandInfo {
        name: "shutdown",
        summary: "power the machine off",
    },
    CommandInfo {
        name: "bench-create",
        summary: "benchmark: 'bench-create N CONFIG' times N new domains to their first \
                  instruction",
    },
];

/// Parses one line: the first whitespace-separated word is the command.
pub fn parse(line: &str) -> Command<'_> {
    let mut words = line.split_whitespace();
    let Some(word) = words.next() else {
        return Command::Empty;
    };
    let (command, name) = match word {
        "help" => (Command::Help, "help"),
        "info" => (Command::Info, "info"),
        "version" => (Command::Version, "version"),
        "audit" => (Command::Audit, "audit"),
        "shutdown" => (Command::Shutdown, "shutdown"),
        "xl" => {
            return match xl::parse(words) {
                Ok(c) => Command::Xl(c),
                Err(u) => Command::XlUsage(u),
            }
        }
        "xenstore-ls" => return parse_xenstore("xenstore-ls", line),
        "xenstore-read" => return parse_xenstore("xenstore-read", line),
        "xenstore-write" => return parse_xenstore("xenstore-write", line),
        "xenstore-rm" => return parse_xenstore("xenstore-rm", line),
        "xenstore-watch" => return parse_xenstore("xenstore-watch", line),
        "bench-create" => {
            let count = words.next().and_then(|w| w.parse::<u32>().ok());
            return match (count, words.next()) {
                (Some(count @ 1..=bench::MAX_COUNT), Some(file)) => match words.next() {
                    None => Command::BenchCreate { count, file },
                    Some(argument) => Command::UnexpectedArgument {
                        command: "bench-create",
                        argument,
                    },
                },
                _ => Command::BenchUsage,
            };
        }
        _ => return Command::Unknown(word),
    };
    match words.next() {
        None => command,
        Some(argument) => Command::UnexpectedArgument {
            command: name,
            argument,
        },
    }
}

/// The `help` text: one line per command.
pub struct Help;

impl fmt::Display for Help {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in COMMANDS {
            writeln!(f, "  {:<16}{}", c.name, c.summary)?;
        }
        Ok(())
    }
}

/// The error line for a command the shell cannot run (`None` for runnable commands).
pub fn error_line<'a>(command: &Command<'a>) -> Option<ErrorLine<'a>> {
    match *command {
        Command::Unknown(word) => Some(ErrorLine::Unknown(word)),
        Command::UnexpectedArgument { command, argument } => {
            Some(ErrorLine::Argument { command, argument })
        }
        Command::XlUsage(usage) => Some(ErrorLine::Xl(usage)),
        Command::BenchUsage => Some(ErrorLine::BenchUsage),
        Command::XenstoreUsage(name) => Some(ErrorLine::Xenstore(name)),
        _ => None,
    }
}

/// One line explaining why a command was not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorLine<'a> {
    /// `unknown command '<word>'; type 'help' for the list`
    Unknown(&'a str),
    /// `<command>: unexpected argument '<argument>'`
    Argument {
        /// The command.
        command: &'a str,
        /// The extra word.
        argument: &'a str,
    },
    /// An `xl` usage error (its own line).
    Xl(XlUsage<'a>),
    /// `bench-create: usage: ...`
    BenchUsage,
    /// `xenstore-...: usage: ...`
    Xenstore(&'static str),
}

impl fmt::Display for ErrorLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorLine::Unknown(word) => {
                write!(f, "unknown command '{word}'; type 'help' for the list")
            }
            ErrorLine::Argument { command, argument } => {
                write!(f, "{command}: unexpected argument '{argument}'")
            }
            ErrorLine::Xl(usage) => write!(f, "{usage}"),
            ErrorLine::BenchUsage => write!(
                f,
                "bench-create: usage: bench-create N CONFIG (N from 1 to {})",
                bench::MAX_COUNT
            ),
            ErrorLine::Xenstore(name) => write!(f, "{name}: usage: {}", xenstore_usage(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("help"), Command::Help);
        assert_eq!(parse("  info  "), Command::Info);
        assert_eq!(parse("\tversion"), Command::Version);
        assert_eq!(parse("shutdown"), Command::Shutdown);
        assert_eq!(parse("xl"), Command::Xl(XlCommand::Help));
        assert_eq!(
            parse(" xl  destroy  hello "),
            Command::Xl(XlCommand::Destroy("hello"))
        );
        assert_eq!(
            parse("bench-create 100 idler.cfg"),
            Command::BenchCreate {
                count: 100,
                file: "idler.cfg"
            }
        );
        assert_eq!(parse(""), Command::Empty);
        assert_eq!(parse("   \t "), Command::Empty);
    }

    #[test]
    fn unknown_and_extra_words() {
        assert_eq!(parse("reboot now"), Command::Unknown("reboot"));
        assert_eq!(parse("HELP"), Command::Unknown("HELP"));
        assert_eq!(parse("infox"), Command::Unknown("infox"));
        assert_eq!(
            parse("info  -v x"),
            Command::UnexpectedArgument {
                command: "info",
                argument: "-v"
            }
        );
    }

    #[test]
    fn error_lines() {
        assert_eq!(
            format!("{}", error_line(&parse("frobnicate 1 2")).unwrap()),
            "unknown command 'frobnicate'; type 'help' for the list"
        );
        assert_eq!(
            format!("{}", error_line(&parse("shutdown now")).unwrap()),
            "shutdown: unexpected argument 'now'"
        );
        assert_eq!(
            format!("{}", error_line(&parse("xl frob")).unwrap()),
            "xl: unknown subcommand 'frob'; type 'xl help' for the list"
        );
        for bad in [
            "bench-create",
            "bench-create 10",
            "bench-create 0 idler.cfg",
            "bench-create 1001 idler.cfg",
            "bench-create many idler.cfg",
        ] {
            assert_eq!(
                format!("{}", error_line(&parse(bad)).unwrap()),
                "bench-create: usage: bench-create N CONFIG (N from 1 to 1000)",
                "{bad}"
            );
        }
        assert_eq!(
            format!("{}", error_line(&parse("bench-create 2 a.cfg b")).unwrap()),
            "bench-create: unexpected argument 'b'"
        );
        assert_eq!(error_line(&parse("bench-create 1000 a.cfg")), None);
        assert_eq!(error_line(&parse("xl list")), None);
        assert_eq!(error_line(&parse("help")), None);
        assert_eq!(error_line(&parse("")), None);
    }

    #[test]
    fn xenstore_commands() {
        assert_eq!(parse("xenstore-ls"), Command::Xenstore(XsCommand::Ls("/")));
        assert_eq!(parse(" xenstore-ls /local/domain "), Command::Xenstore(XsCommand::Ls("/local/domain")));
        assert_eq!(parse("xenstore-read /a/b"), Command::Xenstore(XsCommand::Read("/a/b")));
        assert_eq!(parse("xenstore-rm /a"), Command::Xenstore(XsCommand::Rm("/a")));
        assert_eq!(parse("xenstore-watch @releaseDomain"), Command::Xenstore(XsCommand::Watch("@releaseDomain")));
        assert_eq!(parse("xenstore-write /a/b hello"), Command::Xenstore(XsCommand::Write("/a/b", "hello")));
        assert_eq!(
            parse("  xenstore-write  /a/b  two  words "),
            Command::Xenstore(XsCommand::Write("/a/b", "two  words"))
        );
        for (bad, name) in [
            ("xenstore-read", "xenstore-read"),
            ("xenstore-read /a /b", "xenstore-read"),
            ("xenstore-write /a", "xenstore-write"),
            ("xenstore-rm", "xenstore-rm"),
            ("xenstore-watch", "xenstore-watch"),
            ("xenstore-ls /a /b", "xenstore-ls"),
        ] {
            assert_eq!(parse(bad), Command::XenstoreUsage(name), "{bad}");
        }
        assert_eq!(
            format!("{}", error_line(&parse("xenstore-write /a")).unwrap()),
            "xenstore-write: usage: xenstore-write PATH VALUE"
        );
    }

    #[test]
    fn help_lists_every_command_once() {
        let text = format!("{Help}");
        assert_eq!(text.lines().count(), COMMANDS.len());
        for c in COMMANDS {
            assert_eq!(
                text.lines()
                    .filter(|l| l.trim_start().starts_with(c.name))
                    .count(),
                1
            );
            // Every listed command parses as itself.
            assert!(!matches!(parse(c.name), Command::Unknown(_)), "{}", c.name);
        }
    }
}
