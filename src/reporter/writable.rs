//! Output paths, checked before the first request: a run that could not leave its files is
//! refused (exit 2, nothing sent) instead of being found out after the refreshes.
//!
//! A path can be written when it is not a directory and the nearest folder of it that exists
//! is a directory the process can create files in (the folders below it are created when the
//! file is written). That is tried, not guessed from permission bits: a probe file is created
//! and removed. A file that is written in place (the state database) must itself open for
//! writing.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// One file a run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Output {
    /// What the file is, as the user wrote it: `--report`, `export.path of step \`pdf\``, ...
    pub what: String,
    pub path: PathBuf,
    /// Written in place (SQLite), not through a temporary file renamed over it.
    pub in_place: bool,
}

impl Output {
    pub(crate) fn new(what: impl Into<String>, path: impl Into<PathBuf>) -> Output {
        Output {
            what: what.into(),
            path: path.into(),
            in_place: false,
        }
    }
}

/// One line per output that cannot be written: `cannot write --report afile/r.json: not a
/// directory (afile is a file)`.
pub(crate) fn check(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| {
            unwritable(&o.path, o.in_place)
                .map(|why| format!("cannot write {} {}: {why}", o.what, o.path.display()))
        })
        .collect()
}

/// Why `path` cannot be written, in words; `None` when it can.
pub(crate) fn unwritable(path: &Path, in_place: bool) -> Option<String> {
    if path.as_os_str().is_empty() {
        return Some("the path is empty".into());
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Some("is a directory".into()),
        Ok(_) if in_place => {
            if let Err(e) = std::fs::OpenOptions::new().append(true).open(path) {
                return Some(words(&e));
            }
        }
        _ => {}
    }
    if path.file_name().is_none() {
        return Some("names a directory, not a file".into());
    }
    let mut dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    loop {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => return probe(dir),
            Ok(_) => {
                return Some(format!("not a directory ({} is a file)", dir.display()));
            }
            // Missing (created later), or below a file: look further up.
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                dir = match dir.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                if dir == Path::new(".") && std::fs::metadata(dir).is_err() {
                    return Some("the working directory is gone".into());
                }
            }
            Err(e) => return Some(words(&e)),
        }
    }
}

/// Creates and removes a file in `dir`.
fn probe(dir: &Path) -> Option<String> {
    let probe = dir.join(format!(".pbibatch-write-check.{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        // Left by a run that died between create and remove: the folder is writable.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => None,
        Err(e) => Some(words(&e)),
    }
}

/// An I/O error in the words a user expects: `not a directory`, `permission denied`...
pub(crate) fn words(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::NotADirectory => "not a directory".into(),
        // `create_dir_all` over a plain file.
        ErrorKind::AlreadyExists => "not a directory (a file is in the way)".into(),
        ErrorKind::IsADirectory => "is a directory".into(),
        ErrorKind::ReadOnlyFilesystem => "read-only file system".into(),
        ErrorKind::StorageFull => "no space left on the device".into(),
        ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_why_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("afile"), "x").unwrap();
        std::fs::create_dir(d.join("adir")).unwrap();
        assert_eq!(unwritable(&d.join("r.json"), false), None);
        assert_eq!(unwritable(&d.join("new/deeper/r.json"), false), None);
        assert_eq!(
            unwritable(&d.join("afile/r.json"), false),
            Some(format!(
                "not a directory ({} is a file)",
                d.join("afile").display()
            ))
        );
        assert_eq!(
            unwritable(&d.join("afile/sub/r.json"), false),
            Some(format!(
                "not a directory ({} is a file)",
                d.join("afile").display()
            ))
        );
        assert_eq!(
            unwritable(&d.join("adir"), false),
            Some("is a directory".into())
        );
        // The probe leaves nothing behind.
        let left: Vec<_> = std::fs::read_dir(d).unwrap().collect();
        assert_eq!(left.len(), 2);
        let problems = check(&[
            Output::new("--report", d.join("afile/r.json")),
            Output::new("--junit", d.join("j.xml")),
        ]);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("cannot write --report "),
            "{problems:?}"
        );
    }
}
