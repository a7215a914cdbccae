//! `.env` files: `KEY=VALUE` lines read into the apps' environment by `cargo xtask dev`.
//!
//! Accepted: blank lines, `# comments`, an optional `export ` prefix, values in single quotes
//! (taken literally) or double quotes (`\n`, `\"`, `\\` escapes), and unquoted values (trailing
//! whitespace and ` #comments` dropped). Anything else is an error naming the file and line.
//! Values never appear in an error message: they may be secrets.

use std::collections::BTreeMap;
use std::path::Path;

/// A line of a `.env` file that is not `KEY=VALUE`.
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    #[error("failed to read `{}`: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` line {line}: {message}", path.display())]
    Syntax {
        path: std::path::PathBuf,
        line: usize,
        message: String,
    },
}

/// Reads `path` if it exists; a missing file is an empty environment.
pub fn read_dotenv(path: &Path) -> Result<BTreeMap<String, String>, DotenvError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(DotenvError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse_dotenv(&text).map_err(|(line, message)| DotenvError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    })
}

/// Parses the text of a `.env` file; the error is the 1-based line and what is wrong with it.
pub fn parse_dotenv(text: &str) -> Result<BTreeMap<String, String>, (usize, String)> {
    let mut vars = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err((line_number, "expected `KEY=VALUE`".to_string()));
        };
        let key = key.trim();
        let valid_key = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err((
                line_number,
                format!("`{key}` is not a valid variable name (letters, digits and `_`)"),
            ));
        }
        let value = parse_value(value.trim()).map_err(|message| (line_number, message))?;
        vars.insert(key.to_string(), value);
    }
    Ok(vars)
}

fn parse_value(value: &str) -> Result<String, String> {
    if let Some(rest) = value.strip_prefix('\'') {
        let Some(end) = rest.find('\'') else {
            return Err("unterminated single-quoted value".to_string());
        };
        return after_quote(&rest[end + 1..]).map(|()| rest[..end].to_string());
    }
    if let Some(rest) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => return after_quote(&rest[at + 1..]).map(|()| out),
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, other)) => out.push(other),
                    None => break,
                },
                other => out.push(other),
            }
        }
        return Err("unterminated double-quoted value".to_string());
    }
    let value = match value.find(" #") {
        Some(at) => &value[..at],
        None => value,
    };
    Ok(value.trim_end().to_string())
}

fn after_quote(rest: &str) -> Result<(), String> {
    let rest = rest.trim();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err("unexpected text after the closing quote".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let vars = parse_dotenv(
            "# comment\n\nA=1\nexport B = two words  # note\nC='lit $X # not a comment'\n\
             D=\"line\\nnext \\\"q\\\"\"\nE=\n",
        )
        .unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "lit $X # not a comment");
        assert_eq!(vars["D"], "line\nnext \"q\"");
        assert_eq!(vars["E"], "");
    }

    #[test]
    fn errors_name_the_line_and_never_the_value() {
        assert_eq!(
            parse_dotenv("A=1\nnot a pair\n").unwrap_err(),
            (2, "expected `KEY=VALUE`".to_string())
        );
        assert_eq!(parse_dotenv("1A=x").unwrap_err().0, 1);
        let (line, message) = parse_dotenv("\n\nSECRET=\"hunter2").unwrap_err();
        assert_eq!(line, 3);
        assert!(!message.contains("hunter2"), "{message}");
        assert_eq!(
            parse_dotenv("A='x' y").unwrap_err().1,
            "unexpected text after the closing quote"
        );
    }

    #[test]
    fn a_missing_file_is_empty_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_dotenv(&dir.path().join(".env")).unwrap().is_empty());
        std::fs::write(dir.path().join(".env"), "OK=1\nbad\n").unwrap();
        let error = read_dotenv(&dir.path().join(".env"))
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(".env` line 2: expected `KEY=VALUE`"),
            "{error}"
        );
    }
}
