//! A tool owner's `path` and `url` rules judge the value as a path or an address, not as
//! text: a path that leaves its root through `..`, a newline, a NUL or an encoded
//! separator, and a URL that reaches loopback or the metadata service through another
//! notation, are refused, never forwarded, and audited with the rule; what they allow
//! is forwarded unchanged.

use crate::common;

use common::{Harness, Setup, assert_refused, text};
use serde_json::json;

/// The demo manifest with `echo`'s `text` held to `/data` and `read_note`'s `title` to a
/// public https URL.
fn ruled() -> Setup {
    let shipped = std::fs::read_to_string(common::repo().join("tool-manifests/demo.toml")).unwrap();
    let manifest = shipped
        .replace(
            "[tools.read_note.arguments]\ntitle = { maxLength = 64 }",
            "[tools.read_note.arguments]\ntitle = { maxLength = 200, url = { schemes = [\"https\"], deny = [\"private\", \"loopback\", \"link-local\", \"metadata\"] } }",
        )
        .replace(
            "[tools.echo]\ntier = \"read\"\n",
            "[tools.echo]\ntier = \"read\"\narguments = { text = { path = { within = [\"/data\"] } } }\n",
        );
    assert_ne!(manifest, shipped);
    Setup {
        manifest: Some(manifest),
        ..Setup::default()
    }
}

#[tokio::test]
async fn a_path_that_leaves_its_root_in_any_spelling_is_refused_and_never_forwarded() {
    for value in [
        "/data/../etc/passwd",
        "/data/x\n/etc/passwd",
        "/data/x\u{0}/../../etc/passwd",
        "/data/..%2f..%2fetc/passwd",
        "/data/\u{2215}..\u{2215}etc",
        "relative/../../etc",
    ] {
        let h = Harness::with(ruled()).await;
        let result = h.call("demo_echo", json!({"text": value})).await.unwrap();
        assert_refused(
            &h,
            &result,
            "argument `/text` violates the tool owner's constraint: the value",
            "arguments",
        );
        assert!(text(&result).contains("(`path` rule)"), "{}", text(&result));
        assert!(
            !text(&result).contains("passwd"),
            "never echoed: {}",
            text(&result)
        );
    }
    let h = Harness::with(ruled()).await;
    let inside = "/data/reports/../q3.txt";
    assert_eq!(
        text(&h.call("demo_echo", json!({"text": inside})).await.unwrap()),
        inside
    );
    assert_eq!(h.upstream_calls().len(), 1, "forwarded as written");
}

#[tokio::test]
async fn a_url_to_loopback_or_metadata_in_any_notation_is_refused_and_never_forwarded() {
    for value in [
        "http://169.254.169.254/latest/meta-data/",
        "https://2130706433/",
        "https://0xA9FEA9FE/",
        "https://0251.0376.0251.0376/",
        "https://127.1/",
        "https://[0:0:0:0:0:ffff:7f00:1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://public.example@10.0.0.7/",
        "https://metadata.google.internal/",
    ] {
        let h = Harness::with(ruled()).await;
        let result = h
            .call("demo_read_note", json!({"title": value, "intent": "read"}))
            .await
            .unwrap();
        assert_refused(
            &h,
            &result,
            "argument `/title` violates the tool owner's constraint: the value",
            "arguments",
        );
        assert!(text(&result).contains("(`url` rule)"), "{}", text(&result));
    }
    let h = Harness::with(ruled()).await;
    let public = "https://docs.example.com/notes/1";
    h.call("demo_read_note", json!({"title": public, "intent": "read"}))
        .await
        .unwrap();
    let calls = h.upstream_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["args"]["title"], public);
}

/// `check` says what each rule allows, refuses a rule that cannot work with its file and
/// line, and warns about a `pattern` on an argument named like a path.
#[tokio::test]
async fn check_explains_rules_and_warns_about_patterns_on_paths() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_setup(dir.path(), &ruled());
    let (ok, report) =
        common::run_exe_async(&["check", "--offline", "--config", config.to_str().unwrap()]).await;
    assert!(ok, "{report}");
    assert!(
        report.contains("note:")
            && report.contains("argument `text` must be an absolute path inside `/data`"),
        "{report}"
    );
    assert!(
        report.contains("argument `title` must be a URL with scheme https"),
        "{report}"
    );

    let manifest = dir.path().join("tool-manifests/demo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let patterned = text.replace(
        "[tools.send_message.arguments]\n",
        "[tools.send_message.arguments]\nfile_path = { pattern = \"^/data/\" }\n",
    );
    std::fs::write(&manifest, &patterned).unwrap();
    let (_, report) =
        common::run_exe_async(&["check", "--offline", "--config", config.to_str().unwrap()]).await;
    assert!(
        report.contains("argument `file_path` looks like a path checked with a `pattern`"),
        "{report}"
    );

    std::fs::write(
        &manifest,
        text.replace("within = [\"/data\"]", "within = [\"data\"]"),
    )
    .unwrap();
    let (ok, report) =
        common::run_exe_async(&["check", "--offline", "--config", config.to_str().unwrap()]).await;
    assert!(
        !ok && report.contains("demo.toml:")
            && report.contains("`path.within`: `data` is not an absolute path"),
        "{report}"
    );
}
