//! Tool owners' tooling against the real demo server: `manifest init` writes a manifest
//! that loads, pins every live tool and suggests tiers no laxer than the annotations;
//! `manifest pin` shows what changed and writes new pins only with `--yes`, leaving the
//! rest of the file alone.

use crate::common;

use common::run_exe as run;
use common::{Setup, write_setup};

#[test]
fn init_writes_a_manifest_that_checks_clean_and_pin_rewrites_only_stale_pins() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), &Setup::default());
    let config = config.to_str().unwrap();
    let manifest = dir.path().join("tool-manifests/demo.toml");

    let (ok, out) = run(&["manifest", "init", "--upstream", "demo", "--config", config]);
    assert!(
        !ok && out.contains("--force"),
        "an existing manifest is never overwritten silently: {out}"
    );
    std::fs::remove_file(&manifest).unwrap();
    let (ok, out) = run(&["manifest", "init", "--upstream", "demo", "--config", config]);
    assert!(ok, "{out}");
    let written = std::fs::read_to_string(&manifest).unwrap();
    let tier_of = |tool: &str| {
        let at = written.find(&format!("[tools.{tool}]")).unwrap();
        written[at..].lines().nth(1).unwrap().to_string()
    };
    assert_eq!(tier_of("read_note"), "tier = \"read\"");
    assert_eq!(tier_of("write_note"), "tier = \"transform\"");
    assert_eq!(tier_of("send_message"), "tier = \"act\"");
    assert_eq!(
        tier_of("toggle_extra"),
        "tier = \"act\"",
        "no destructiveHint: false, so act"
    );
    assert!(written.contains("# approval = {"), "{written}");
    let (ok, out) = run(&["check", "--config", config]);
    assert!(
        ok && out.contains("0 error(s)"),
        "the skeleton checks clean: {out}"
    );

    // A stale pin: shown, not written without --yes, then written; comments survive.
    let at = written.find("pin = \"sha256:").unwrap() + "pin = \"sha256:".len();
    let stale = format!(
        "{}{}{}",
        &written[..at],
        "0".repeat(64),
        &written[at + 64..]
    );
    std::fs::write(&manifest, format!("{stale}\n# owner's note\n")).unwrap();
    let (ok, out) = run(&["check", "--config", config]);
    assert!(!ok && out.contains("changed since it was pinned"), "{out}");
    let (ok, out) = run(&["manifest", "pin", "--upstream", "demo", "--config", config]);
    assert!(
        !ok && out.contains("1 pin(s) would change") && out.contains("live definition now"),
        "{out}"
    );
    assert!(
        std::fs::read_to_string(&manifest)
            .unwrap()
            .contains(&"0".repeat(64))
    );
    let (ok, out) = run(&[
        "manifest",
        "pin",
        "--upstream",
        "demo",
        "--yes",
        "--config",
        config,
    ]);
    assert!(ok && out.contains("wrote 1 pin(s)"), "{out}");
    let repinned = std::fs::read_to_string(&manifest).unwrap();
    assert_eq!(repinned, format!("{written}\n# owner's note\n"));
    let (ok, out) = run(&["check", "--config", config]);
    assert!(ok && out.contains("0 error(s)"), "{out}");
}
