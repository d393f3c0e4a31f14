//! What the writer produces validates against the DASH MPD schema (ISO/IEC 23009-1 5th ed.),
//! checked offline with xmllint and the schema copy in tests/schema.

use std::path::{Path, PathBuf};
use std::process::Command;

use mpd::Mpd;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schema")
}

/// Runs xmllint on the files; returns (success, combined output).
fn xmllint(files: &[PathBuf]) -> (bool, String) {
    let tool = common::tools::require("xmllint");
    let dir = schema_dir();
    let out = Command::new(tool)
        .env("XML_CATALOG_FILES", dir.join("catalog.xml"))
        .args(["--nonet", "--noout", "--schema"])
        .arg(dir.join("DASH-MPD.xsd"))
        .args(files)
        .output()
        .expect("run xmllint");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn written_mpds_validate() {
    let dir = out_dir("mpd-schema");
    let mut files = Vec::new();
    for (name, model) in crate::models::all() {
        let path = dir.join(format!("model-{name}.mpd"));
        std::fs::write(&path, model.to_xml().unwrap()).unwrap();
        files.push(path);
    }
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mpd");
    for entry in std::fs::read_dir(fixtures).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".mpd") || name.starts_with("lenient_") {
            continue;
        }
        let mpd = Mpd::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let out = dir.join(format!("fixture-{name}"));
        std::fs::write(&out, mpd.to_xml().unwrap()).unwrap();
        files.push(out);
    }
    assert!(files.len() >= 24, "{} files", files.len());
    let (ok, text) = xmllint(&files);
    assert!(ok, "xmllint rejected what the writer produced:\n{text}");
    for f in &files {
        assert!(
            text.contains(&format!("{} validates", f.display())),
            "{} not reported valid:\n{text}",
            f.display()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn schema_check_does_reject_bad_documents() {
    let dir = out_dir("mpd-schema-neg");
    let xml = crate::models::static_live_profile().to_xml().unwrap();
    let no_buffer = xml.replace(" minBufferTime=\"PT4S\"", "");
    let misordered = xml.replacen("<ProgramInformation", "<Period/><ProgramInformation", 1);
    let mut files = Vec::new();
    for (name, text) in [("no-min-buffer", no_buffer), ("misordered", misordered)] {
        let p = dir.join(format!("{name}.mpd"));
        std::fs::write(&p, text).unwrap();
        files.push(p);
    }
    for f in files {
        let (ok, text) = xmllint(std::slice::from_ref(&f));
        assert!(!ok, "{} should fail validation:\n{text}", f.display());
        assert!(text.contains("fails to validate"), "{text}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
