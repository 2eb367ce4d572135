//! The README's walk-through as a reader runs it: the ```` ```sh ```` blocks
//! of a Markdown file, split into shell commands, run in one bash (so
//! `source`, `TOKEN=$(…)` and `MTLS=…` carry over), each command's output
//! checked against the expectation comment under it.
//!
//! An expectation is a comment line right after a command: `# → check; check`.
//! A check is one of
//! - `"key": value` or `"key"`: the output holds it (spaces aside), as grpcurl
//!   prints JSON;
//! - `` `text` ``: the output holds the text as written;
//! - `no <check>`: the output does not hold it;
//! - `reason r`: an ErrorInfo with reason `r` (the call fails);
//! - `error Code`: a gRPC error with that code (the call fails);
//! - `fails`: the command exits non-zero.
//!
//! `$NAME` in a check is the shell variable's value after the command. A
//! command without `reason`, `error` or `fails` must exit zero. Blocks fenced
//! as ```` ```sh no-run ```` are not run.
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// One command of a walk-through, with what its comment promises.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based line of the command in the Markdown file.
    pub line: usize,
    pub command: String,
    pub checks: Vec<Check>,
}

/// One promise about a command's output or exit.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// JSON-ish text, compared with all whitespace removed.
    Json {
        text: String,
        present: bool,
    },
    /// Text compared as written.
    Text {
        text: String,
        present: bool,
    },
    Fails,
}

impl Step {
    fn expects_failure(&self) -> bool {
        self.checks.iter().any(|c| matches!(c, Check::Fails))
    }

    /// The shell variables its checks name (`$TOKEN` → `TOKEN`).
    fn variables(&self) -> Vec<String> {
        let mut names = Vec::new();
        for check in &self.checks {
            let (Check::Json { text, .. } | Check::Text { text, .. }) = check else { continue };
            for part in text.split('$').skip(1) {
                let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }
}

/// Parses the expectation text after `# →`.
pub fn parse_checks(text: &str) -> Result<Vec<Check>, String> {
    let mut checks = Vec::new();
    for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        parse_check(item, true, &mut checks)?;
    }
    Ok(checks)
}

fn parse_check(item: &str, present: bool, checks: &mut Vec<Check>) -> Result<(), String> {
    if item == "fails" && present {
        checks.push(Check::Fails);
    } else if let Some(rest) = item.strip_prefix("no ") {
        parse_check(rest.trim(), false, checks)?;
    } else if let Some(reason) = item.strip_prefix("reason ") {
        checks.push(Check::Json { text: format!("\"reason\":\"{}\"", reason.trim()), present: true });
        checks.push(Check::Fails);
    } else if let Some(code) = item.strip_prefix("error ") {
        checks.push(Check::Text { text: format!("Code: {}", code.trim()), present: true });
        checks.push(Check::Fails);
    } else if item.len() >= 2 && item.starts_with('`') && item.ends_with('`') {
        checks.push(Check::Text { text: item[1..item.len() - 1].to_owned(), present });
    } else if item.starts_with('"') {
        checks.push(Check::Json { text: item.to_owned(), present });
    } else {
        return Err(format!("unknown check `{item}`"));
    }
    Ok(())
}

/// The runnable steps of every ```` ```sh ```` block in `markdown`.
pub fn steps(markdown: &str) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    let mut quote = Quote::None;
    for (i, line) in markdown.lines().enumerate() {
        let number = i + 1;
        let trimmed = line.trim_start();
        if !in_block {
            if trimmed.starts_with("```sh") && !trimmed.contains("no-run") {
                in_block = true;
            }
            continue;
        }
        if pending.is_none() && trimmed.starts_with("```") {
            in_block = false;
            continue;
        }
        if let Some((start, mut text)) = pending.take() {
            text.push('\n');
            text.push_str(line);
            quote = quote.after(line);
            if quote == Quote::None && !line.ends_with('\\') {
                steps.push(Step { line: start, command: text, checks: Vec::new() });
            } else {
                pending = Some((start, text));
            }
            continue;
        }
        if let Some(expectation) = trimmed.strip_prefix("# →") {
            let step = steps.last_mut().ok_or(format!("line {number}: an expectation before any command"))?;
            step.checks.extend(parse_checks(expectation).map_err(|e| format!("line {number}: {e}"))?);
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        quote = Quote::None.after(line);
        if quote == Quote::None && !line.ends_with('\\') {
            steps.push(Step { line: number, command: line.to_owned(), checks: Vec::new() });
        } else {
            pending = Some((number, line.to_owned()));
        }
    }
    if in_block || pending.is_some() {
        return Err("an unterminated block or command".into());
    }
    Ok(steps)
}

/// Shell quoting state at the end of a line, enough to tell where a command ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
}

impl Quote {
    fn after(self, line: &str) -> Self {
        let mut state = self;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            state = match (state, c) {
                (Quote::None, '#') => return state, // a trailing comment
                (Quote::None | Quote::Double, '\\') => {
                    chars.next();
                    state
                }
                (Quote::None, '\'') => Quote::Single,
                (Quote::None, '"') => Quote::Double,
                (Quote::Single, '\'') | (Quote::Double, '"') => Quote::None,
                (s, _) => s,
            };
        }
        state
    }
}

/// A step whose promise did not hold.
#[derive(Debug)]
pub struct Failure {
    pub line: usize,
    pub command: String,
    pub problem: String,
    pub output: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}\n$ {}\n{}", self.line, self.problem, self.command, self.output)
    }
}

/// What a run left: each failed promise, and the variables asked for at its end.
#[derive(Debug)]
pub struct Outcome {
    pub failures: Vec<Failure>,
    pub variables: std::collections::HashMap<String, String>,
}

/// Runs `steps` in one bash in `dir`, within `limit`, and checks each; `keep`
/// names variables to report at the end.
pub async fn run(steps: &[Step], dir: &Path, env: &[(&str, &str)], limit: Duration, keep: &[&str]) -> Outcome {
    let out = dir.join(".walkthrough");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut script = String::from("set +e\n");
    for (i, step) in steps.iter().enumerate() {
        script.push_str(&format!(
            "__step=$(cat <<'__PAYVAULT_STEP__'\n{}\n__PAYVAULT_STEP__\n)\neval \"$__step\" > .walkthrough/{i}.out 2>&1 < /dev/null\necho $? > .walkthrough/{i}.rc\n",
            step.command
        ));
        for name in step.variables() {
            script.push_str(&format!("printf '%s' \"${{{name}-}}\" > .walkthrough/{i}.var.{name}\n"));
        }
    }
    for name in keep {
        script.push_str(&format!("printf '%s' \"${{{name}-}}\" > .walkthrough/end.var.{name}\n"));
    }
    let mut command = tokio::process::Command::new("bash");
    command.arg("-c").arg(&script).current_dir(dir).stdin(Stdio::null()).kill_on_drop(true);
    command.envs(env.iter().copied());
    let status = tokio::time::timeout(limit, command.status()).await;
    let mut failures = Vec::new();
    if !matches!(status, Ok(Ok(_))) {
        failures.push(Failure {
            line: 0,
            command: String::new(),
            problem: format!("the walk-through did not finish within {limit:?}"),
            output: String::new(),
        });
    }
    let read = |name: String| std::fs::read_to_string(out.join(name)).ok();
    for (i, step) in steps.iter().enumerate() {
        let fail = |problem: String, output: &str| Failure {
            line: step.line,
            command: step.command.clone(),
            problem,
            output: output.to_owned(),
        };
        let Some(rc) = read(format!("{i}.rc")) else {
            failures.push(fail("never ran".into(), ""));
            continue;
        };
        let output = read(format!("{i}.out")).unwrap_or_default();
        let code: i32 = rc.trim().parse().unwrap_or(-1);
        match (code == 0, step.expects_failure()) {
            (true, true) => failures.push(fail("succeeded, but its comment says it fails".into(), &output)),
            (false, false) => failures.push(fail(format!("exited {code}"), &output)),
            _ => {}
        }
        let squeezed: String = output.chars().filter(|c| !c.is_whitespace()).collect();
        for check in &step.checks {
            let (text, present, json) = match check {
                Check::Json { text, present } => (text, *present, true),
                Check::Text { text, present } => (text, *present, false),
                Check::Fails => continue,
            };
            let mut wanted = text.clone();
            for name in step.variables() {
                let value = read(format!("{i}.var.{name}")).unwrap_or_default();
                wanted = wanted.replace(&format!("${name}"), &value);
            }
            let found = if json {
                let wanted: String = wanted.chars().filter(|c| !c.is_whitespace()).collect();
                squeezed.contains(&wanted)
            } else {
                output.contains(&wanted)
            };
            if found != present {
                let verb = if present { "lacks" } else { "holds" };
                failures.push(fail(format!("its output {verb} {wanted}"), &output));
            }
        }
    }
    let variables =
        keep.iter().map(|name| (name.to_string(), read(format!("end.var.{name}")).unwrap_or_default())).collect();
    Outcome { failures, variables }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r##"
Text.

```sh
# A comment.
X=$(echo '{"id": "a1",
  "n": 2}' | tee /dev/stderr | jq -r .id)
# → "id": "a1"; "n": 2; no "m"
echo "# not a comment" \
  "$X"
# → `# not a comment a1`; `$X`
false
# → fails
echo 'Code: NotFound {"reason":"nope"}'; (exit 3)
# → reason nope; error NotFound
```

```sh no-run
never
```
"##;

    #[test]
    fn commands_end_where_the_shell_ends_them_and_carry_their_checks() {
        let steps = steps(DOC).unwrap();
        assert_eq!(steps.len(), 4, "{steps:#?}");
        assert_eq!(steps[0].line, 6);
        assert!(steps[0].command.ends_with("jq -r .id)"));
        assert_eq!(
            steps[0].checks,
            vec![
                Check::Json { text: "\"id\": \"a1\"".into(), present: true },
                Check::Json { text: "\"n\": 2".into(), present: true },
                Check::Json { text: "\"m\"".into(), present: false },
            ]
        );
        assert_eq!(steps[1].variables(), vec!["X".to_string()]);
        assert!(steps[3].expects_failure());
        assert!(parse_checks("whatever").is_err());
    }

    #[tokio::test]
    async fn promises_that_hold_pass_and_broken_ones_are_reported() {
        let dir = crate::ScratchDir::new();
        let good = steps(DOC).unwrap();
        let outcome = run(&good, dir.path(), &[], Duration::from_secs(20), &["X"]).await;
        assert!(outcome.failures.is_empty(), "{}", outcome.failures.iter().map(|f| f.to_string()).collect::<String>());
        assert_eq!(outcome.variables["X"], "a1");

        let bad = DOC.replace("# → \"id\": \"a1\"", "# → \"id\": \"b2\"").replace("# → fails", "# → `x`");
        let outcome = run(&steps(&bad).unwrap(), dir.path(), &[], Duration::from_secs(20), &[]).await;
        let problems: Vec<_> = outcome.failures.iter().map(|f| (f.line, f.problem.clone())).collect();
        assert_eq!(
            problems,
            vec![
                (6, "its output lacks \"id\": \"b2\"".to_string()),
                (12, "exited 1".into()),
                (12, "its output lacks x".into())
            ]
        );
    }
}
