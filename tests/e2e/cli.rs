//! The command line itself: `--version` names the git revision the binary
//! was built from, and `completions` prints scripts a shell accepts and
//! completes with.

use std::process::Command;

fn outflow(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_outflow")).args(args).output().expect("running outflow");
    assert!(out.status.success(), "outflow {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn version_names_the_git_revision() {
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running git");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let version = outflow(&["--version"]);
    let want = format!("outflow {} ({head}", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&want), "{version:?} should start with {want:?}");
    assert!(version.trim_end().ends_with(')'), "{version:?}");
}

/// bash loads the script and completes `outflow off` to `offsets` and the
/// subcommands of `outflow offsets`.
#[test]
fn bash_completion_completes_subcommands() {
    let script = outflow(&["completions", "bash"]);
    let complete = |words: &str, cword: usize| -> String {
        let program = format!(
            "{script}\nCOMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}\n\
             _outflow outflow \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = Command::new("bash").arg("-c").arg(program).output().expect("running bash");
        assert!(out.status.success(), "bash: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(complete("outflow off", 1).trim(), "offsets");
    let actions = complete("outflow offsets ''", 2);
    for action in ["show", "set", "reset"] {
        assert!(actions.lines().any(|l| l == action), "{action} in {actions:?}");
    }
    for shell in ["zsh", "fish"] {
        assert!(outflow(&["completions", shell]).contains("offsets"), "{shell} completes offsets");
    }
}
