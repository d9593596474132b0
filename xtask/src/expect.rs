//! Judges a scenario's run: in-order regex expectations, forbidden lines, exit status,
//! timeout and the scenario's own check.

use crate::qemu::{Exit, Session};
use crate::scenarios::Scenario;
use regex::Regex;

/// One expectation that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The regex as written in the scenario.
    pub pattern: String,
    /// Index of the matching line.
    pub line: usize,
    /// Group 0 (the whole match) and the capture groups; None for a group that did not take part.
    pub groups: Vec<Option<String>>,
}

/// What a scenario's custom check sees.
pub struct CheckInput<'a> {
    /// The scenario (its memory size, command lines...).
    pub scenario: &'a Scenario,
    /// Every output line.
    pub lines: &'a [String],
    /// One hit per expectation, in order.
    pub hits: &'a [Hit],
}

impl CheckInput<'_> {
    /// Capture group `index` of the first expectation whose pattern contains `pattern_part`.
    pub fn group(&self, pattern_part: &str, index: usize) -> Result<&str, String> {
        let hit = self
            .hits
            .iter()
            .find(|hit| hit.pattern.contains(pattern_part))
            .ok_or_else(|| format!("no expectation containing `{pattern_part}`"))?;
        hit.groups
            .get(index)
            .and_then(|group| group.as_deref())
            .ok_or_else(|| format!("`{}` has no capture group {index}", hit.pattern))
    }
}

/// Why an expectation list did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    /// Index of the first expectation that matched no later line.
    pub index: usize,
    /// The message for the report.
    pub message: String,
}

fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("bad regex `{pattern}`: {e}"))
}

/// Matches every pattern against the lines in order; each must match a line after the
/// previous pattern's line.
pub fn match_in_order(lines: &[String], patterns: &[&str]) -> Result<Vec<Hit>, Unmatched> {
    let mut hits = Vec::with_capacity(patterns.len());
    let mut next_line = 0;
    for (index, pattern) in patterns.iter().enumerate() {
        let regex = compile(pattern).map_err(|message| Unmatched { index, message })?;
        let found = lines
            .iter()
            .enumerate()
            .skip(next_line)
            .find_map(|(at, line)| {
                regex.captures(line).map(|caps| {
                    (
                        at,
                        caps.iter()
                            .map(|g| g.map(|m| m.as_str().to_string()))
                            .collect(),
                    )
                })
            });
        let Some((line, groups)) = found else {
            let after = match next_line {
                0 => "anywhere in the output".to_string(),
                n => format!("after line {n}"),
            };
            return Err(Unmatched {
                index,
                message: format!(
                    "expectation {} of {} not found {after}: `{pattern}`",
                    index + 1,
                    patterns.len()
                ),
            });
        };
        hits.push(Hit {
            pattern: pattern.to_string(),
            line,
            groups,
        });
        next_line = line + 1;
    }
    Ok(hits)
}

/// The first line matching any forbidden pattern.
pub fn find_forbidden(lines: &[String], patterns: &[&str]) -> Result<(), String> {
    for pattern in patterns {
        let regex = compile(pattern)?;
        if let Some((at, line)) = lines
            .iter()
            .enumerate()
            .find(|(_, line)| regex.is_match(line))
        {
            return Err(format!(
                "forbidden `{pattern}` matched line {}: {line}",
                at + 1
            ));
        }
    }
    Ok(())
}

/// Whether the run passed; the error says why not.
pub fn judge(scenario: &Scenario, session: &Session) -> Result<(), String> {
    let lines = session.lines();
    let matched = match_in_order(&lines, scenario.expect);
    if session.timed_out {
        let waiting = match &matched {
            Err(unmatched) => format!("; {}", unmatched.message),
            Ok(_) => String::new(),
        };
        let stalled = match &session.stalled_at {
            Some(step) => format!("; the input was still {step}"),
            None => String::new(),
        };
        return Err(format!(
            "timed out after {} s{waiting}{stalled}",
            scenario.timeout.as_secs()
        ));
    }
    find_forbidden(&lines, scenario.forbid)?;
    let hits = matched.map_err(|unmatched| unmatched.message)?;
    match session.status {
        Some(status) if Exit::from_status(status) == scenario.exit => {}
        Some(status) => {
            return Err(format!(
                "QEMU exit status {status} ({}), expected {} ({})",
                Exit::from_status(status).describe(),
                scenario.exit.status(),
                scenario.exit.describe()
            ))
        }
        None => return Err("QEMU was killed by a signal".into()),
    }
    if let Some(check) = scenario.check {
        check(&CheckInput {
            scenario,
            lines: &lines,
            hits: &hits,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::DEFAULT;
    use std::time::Duration;

    fn lines(text: &str) -> Vec<String> {
        crate::qemu::split_lines(text)
    }

    const OUTPUT: &str = "(mk) microkernel 0.1 booting\r\ndom0: modules: 1\r\ndom0: up in 12.345 ms\r\n\
        dom0> info\r\nmemory: total 261120 KiB (255 MiB)\r\ndom0> shutdown\r\ndom0: powering off\r\n";

    fn session(output: &str, status: Option<i32>) -> Session {
        Session {
            output: output.into(),
            status,
            ..Session::default()
        }
    }

    #[test]
    fn in_order_with_captures() {
        let hits = match_in_order(
            &lines(OUTPUT),
            &[
                r"booting",
                r"up in ([0-9]+)\.([0-9]{3}) ms",
                "dom0> ",
                "dom0> ",
            ],
        )
        .unwrap();
        assert_eq!(hits[1].line, 2);
        assert_eq!(
            hits[1].groups,
            [
                Some("up in 12.345 ms".into()),
                Some("12".into()),
                Some("345".into())
            ]
        );
        assert_eq!(
            (hits[2].line, hits[3].line),
            (3, 5),
            "each expectation takes a later line"
        );
    }

    #[test]
    fn order_matters() {
        let err = match_in_order(&lines(OUTPUT), &["powering off", "booting"]).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(
            err.message
                .contains("expectation 2 of 2 not found after line 7: `booting`"),
            "{}",
            err.message
        );
        let err = match_in_order(&lines(OUTPUT), &["never printed"]).unwrap_err();
        assert!(err.message.contains("anywhere"), "{}", err.message);
    }

    #[test]
    fn forbidden_lines() {
        let text = lines("ok\n(mk) PANIC: oops\n");
        assert!(find_forbidden(&text, &["FAIL"]).is_ok());
        let err = find_forbidden(&text, &["FAIL", "PANIC"]).unwrap_err();
        assert!(err.contains("line 2: (mk) PANIC: oops"), "{err}");
        assert!(find_forbidden(&text, &["("])
            .unwrap_err()
            .contains("bad regex"));
    }

    fn scenario() -> Scenario {
        Scenario {
            name: "t",
            expect: &["booting", r"memory: total ([0-9]+) KiB", "powering off"],
            ..DEFAULT
        }
    }

    #[test]
    fn judge_passes_and_runs_check() {
        assert_eq!(judge(&scenario(), &session(OUTPUT, Some(33))), Ok(()));
        let with_check = Scenario {
            check: Some(|input| {
                if input.group("memory", 1)? == "261120" {
                    Err("seen 261120".into())
                } else {
                    Ok(())
                }
            }),
            ..scenario()
        };
        assert_eq!(
            judge(&with_check, &session(OUTPUT, Some(33))),
            Err("seen 261120".into())
        );
    }

    #[test]
    fn judge_exit_status() {
        let err = judge(&scenario(), &session(OUTPUT, Some(37))).unwrap_err();
        assert!(
            err.contains("exit status 37 (dom0 crashed), expected 33"),
            "{err}"
        );
        let crash = Scenario {
            exit: Exit::Crash,
            ..scenario()
        };
        assert!(judge(&crash, &session(OUTPUT, Some(37))).is_ok());
        assert!(judge(&scenario(), &session(OUTPUT, None))
            .unwrap_err()
            .contains("signal"));
    }

    #[test]
    fn judge_timeout_names_what_was_awaited() {
        let timed_out = Session {
            timed_out: true,
            ..session("(mk) microkernel 0.1 booting\n", None)
        };
        let scenario = Scenario {
            timeout: Duration::from_secs(7),
            ..scenario()
        };
        let err = judge(&scenario, &timed_out).unwrap_err();
        assert!(
            err.starts_with("timed out after 7 s; expectation 2 of 3"),
            "{err}"
        );
        // Even with every line seen, a timeout fails.
        let all_seen = Session {
            timed_out: true,
            ..session(OUTPUT, None)
        };
        assert_eq!(
            judge(&scenario, &all_seen),
            Err("timed out after 7 s".into())
        );
    }

    #[test]
    fn judge_forbidden_and_missing() {
        let panicked = format!("{OUTPUT}(mk) PANIC: at x\n");
        assert!(judge(&scenario(), &session(&panicked, Some(33)))
            .unwrap_err()
            .contains("forbidden `PANIC`"));
        let short = "(mk) microkernel 0.1 booting\n";
        assert!(judge(&scenario(), &session(short, Some(33)))
            .unwrap_err()
            .contains("expectation 2 of 3"));
    }

    #[test]
    fn group_lookup_errors() {
        let l = lines(OUTPUT);
        let hits = match_in_order(&l, &["booting"]).unwrap();
        let input = CheckInput {
            scenario: &DEFAULT,
            lines: &l,
            hits: &hits,
        };
        assert_eq!(input.group("boot", 0), Ok("booting"));
        assert!(input.group("boot", 1).is_err());
        assert!(input.group("nothing", 0).is_err());
    }
}
