//! The fuzzer's interesting inputs (tests/fixtures/fuzz/, kept from `fuzz/` runs), replayed
//! by the normal suite: each must load or be rejected with located, renderable diagnostics,
//! without a panic.

use pbibatch::job::{DiagFormat, load_bytes};

#[test]
fn fuzz_corpus_inputs_load_or_fail_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fuzz fixtures in {}", dir.display());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        match load_bytes(&name, &bytes, &[], &|_| None) {
            Ok(loaded) => {
                let _ = loaded.warnings.render(DiagFormat::Short, false);
            }
            Err(d) => {
                assert!(d.has_errors(), "{name}: rejected without an error");
                let short = d.render(DiagFormat::Short, false);
                assert!(short.contains("error"), "{name}: {short}");
                let _ = d.render(DiagFormat::Human, false);
                // Every located diagnostic points inside the file.
                for item in d.items() {
                    if let Some(p) = &item.position {
                        assert!(
                            p.offset <= bytes.len(),
                            "{name}: offset {} past the end",
                            p.offset
                        );
                        assert!(p.line >= 1 && p.column >= 1, "{name}: {p:?}");
                    }
                }
            }
        }
    }
}
