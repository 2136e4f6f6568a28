//! Checks over the repository itself; no root needed, except to run the
//! binaries whose transcripts the book shows.
//!
//! The book must include real code through anchors that exist; the docs must
//! agree with the suites; Dockerfile.dev and the Vagrantfile must parse and
//! use the same setup script as CI; CI must run the README's test command.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::milestones::MILESTONES;
use harness::workspace_root;

fn read(path: impl AsRef<Path>) -> String {
    let path = workspace_root().join(path);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn files_with_extension(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_with_extension(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

/// Every `{{#include FILE:ANCHOR}}` (and `FILE` alone) in the book.
fn includes() -> Vec<(PathBuf, String, Option<String>)> {
    let src = workspace_root().join("book/src");
    let mut chapters = Vec::new();
    files_with_extension(&src, "md", &mut chapters);
    let mut found = Vec::new();
    for chapter in chapters {
        let text = fs::read_to_string(&chapter).unwrap();
        for piece in text.split("{{#include ").skip(1) {
            let spec = piece.split("}}").next().unwrap().trim();
            let (file, anchor) = match spec.rsplit_once(':') {
                Some((file, anchor)) => (file, Some(anchor.to_owned())),
                None => (spec, None),
            };
            found.push((chapter.clone(), file.to_owned(), anchor));
        }
    }
    found
}

#[test]
fn every_book_include_names_a_file_and_a_non_empty_anchor() {
    let all = includes();
    assert!(
        all.len() >= 10,
        "the book includes real code; found only {}",
        all.len()
    );
    let mut broken = Vec::new();
    for (chapter, file, anchor) in all {
        let path = chapter.parent().unwrap().join(&file);
        let Ok(text) = fs::read_to_string(&path) else {
            broken.push(format!("{}: {file}: no such file", chapter.display()));
            continue;
        };
        let Some(anchor) = anchor else { continue };
        let start = format!("ANCHOR: {anchor}");
        let end = format!("ANCHOR_END: {anchor}");
        let body: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.trim_end().ends_with(&start))
            .skip(1)
            .take_while(|l| !l.trim_end().ends_with(&end))
            .filter(|l| !l.trim().is_empty())
            .collect();
        if !text.contains(&start) || !text.contains(&end) {
            broken.push(format!(
                "{}: {file}: no anchor `{anchor}`",
                chapter.display()
            ));
        } else if body.is_empty() {
            broken.push(format!(
                "{}: {file}: anchor `{anchor}` is empty",
                chapter.display()
            ));
        }
    }
    assert!(broken.is_empty(), "broken includes:\n{}", broken.join("\n"));
}

#[test]
fn every_stage_has_a_chapter_in_the_summary() {
    let summary = read("book/src/SUMMARY.md");
    for entry in fs::read_dir(workspace_root().join("stages"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let chapter = format!("{name}.md");
        assert!(
            workspace_root().join("book/src").join(&chapter).is_file(),
            "stage {name} has no chapter book/src/{chapter}"
        );
        assert!(
            summary.contains(&chapter),
            "SUMMARY.md does not list {chapter}"
        );
    }
}

#[test]
fn milestones_agree_with_the_suites_and_milestones_md() {
    let doc = read("MILESTONES.md");
    for m in MILESTONES {
        let suite = read(format!("tests/suites/{}.rs", m.suite));
        assert!(
            suite.contains(&format!("mod {} {{", m.module)),
            "milestone {} expects module {} in tests/suites/{}.rs",
            m.id,
            m.module,
            m.suite
        );
        assert!(
            doc.contains(m.id),
            "MILESTONES.md does not list milestone {}",
            m.id
        );
        assert!(
            doc.contains(&format!("{}::{}", m.suite, m.module)),
            "MILESTONES.md should name the tests of {} ({}::{})",
            m.id,
            m.suite,
            m.module
        );
        assert!(
            workspace_root().join(m.chapter).is_file(),
            "{} missing",
            m.chapter
        );
    }
}

fn tools_python() -> PathBuf {
    let tools = std::env::var_os("MYRUNTIME_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/myruntime")
        });
    let python = tools.join("venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup-test-env.sh (it installs Docker's Dockerfile parser there)",
        python.display()
    );
    python
}

fn lint_dockerfile(path: &Path) -> std::process::Output {
    Command::new(tools_python())
        .arg(workspace_root().join("scripts/lint-dockerfile.py"))
        .arg(path)
        .output()
        .expect("run scripts/lint-dockerfile.py")
}

#[test]
fn dockerfile_dev_parses_and_passes_the_lint() {
    let out = lint_dockerfile(&workspace_root().join("Dockerfile.dev"));
    assert!(
        out.status.success(),
        "Dockerfile.dev:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_dockerfile_lint_catches_a_bad_dockerfile() {
    let dir = std::env::temp_dir().join(format!("myruntime-lint-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("Dockerfile");
    fs::write(
        &bad,
        "FROM debian\nRUN apt-get install curl\nCMD make test\n",
    )
    .unwrap();
    let out = lint_dockerfile(&bad);
    fs::remove_dir_all(&dir).unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for rule in ["DF001", "DF002", "DF003", "DF004", "DF006", "DF007"] {
        assert!(report.contains(rule), "{rule} not reported:\n{report}");
    }
}

#[test]
fn vagrantfile_parses_and_provisions_with_the_setup_script() {
    let out = Command::new("ruby")
        .args(["-c", "Vagrantfile"])
        .current_dir(workspace_root())
        .output()
        .expect("ruby is missing: run scripts/setup-test-env.sh");
    assert!(
        out.status.success(),
        "ruby -c Vagrantfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = read("Vagrantfile");
    assert!(
        text.contains("scripts/setup-test-env.sh"),
        "the VM must be provisioned by the setup script CI uses"
    );
    assert!(text.contains("config.vm.box"), "no box");
}

#[test]
fn dev_environments_use_the_setup_script_ci_uses() {
    let ci = read(".ci/run");
    let makefile = read("Makefile");
    assert!(
        makefile.contains("scripts/setup-test-env.sh"),
        "make setup must run the setup script"
    );
    assert!(read("Dockerfile.dev").contains("setup-test-env.sh --packages-only"));
    assert!(ci.contains("make test"), ".ci/run must call make test");
}

#[test]
fn ci_runs_the_test_command_the_readme_gives() {
    let readme = read("README.md");
    let command = readme
        .lines()
        .find_map(|l| l.strip_prefix("<!-- test-command: ")?.strip_suffix(" -->"))
        .expect("README.md marks its test command with <!-- test-command: ... -->");
    assert!(
        readme
            .lines()
            .any(|l| l.starts_with("$ ") && l.ends_with(command)),
        "README.md shows `{command}` in a console block"
    );
    assert!(
        read(".ci/run")
            .lines()
            .any(|l| l.trim() == command || l.trim() == format!("exec {command}")),
        ".ci/run must run exactly `{command}`"
    );
}

#[test]
fn shipped_code_has_no_placeholders() {
    let mut sources = Vec::new();
    for dir in ["stages", "final"] {
        files_with_extension(&workspace_root().join(dir), "rs", &mut sources);
    }
    let mut found = Vec::new();
    for path in sources {
        let text = fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            if ["todo!(", "unimplemented!("]
                .iter()
                .any(|p| line.contains(p))
            {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "placeholders in shipped code:\n{}",
        found.join("\n")
    );
}

/// The transcripts the book shows are what the binaries print today.
/// Privileged: it starts containers (CI runs it as root).
#[test]
fn the_books_transcripts_are_what_the_binaries_print() {
    use harness::transcripts::{TRANSCRIPTS, dir, render};
    harness::require_root();
    // The binaries make the runtime directory and the default cgroup
    // parent, as any run does: gone again when this test process exits.
    harness::host::remove_runtime_leftovers_at_exit();
    let bins = workspace_root().join("target/debug");
    let mut stale = Vec::new();
    for t in TRANSCRIPTS {
        let path = dir().join(format!("{}.console", t.name));
        let shown = fs::read_to_string(&path).unwrap_or_default();
        let printed = render(t, &bins);
        if shown != printed {
            stale.push(format!(
                "{}:\n--- the book shows\n{shown}--- the binary prints\n{printed}",
                path.display()
            ));
        }
        let included = format!("transcripts/{}.console", t.name);
        assert!(
            includes().iter().any(|(_, file, _)| file == &included),
            "no chapter includes {included}"
        );
    }
    assert!(
        stale.is_empty(),
        "run `sudo make transcripts` and read the change:\n{}",
        stale.join("\n")
    );
    let mut files = Vec::new();
    files_with_extension(&dir(), "console", &mut files);
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            TRANSCRIPTS.iter().any(|t| t.name == name),
            "{} is not made by `make transcripts` (tests/src/transcripts.rs): remove it or list it",
            file.display()
        );
    }
}
