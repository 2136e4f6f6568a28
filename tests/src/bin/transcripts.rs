//! `make transcripts`: run the binaries and write the book's transcripts
//! (`book/src/transcripts/*.console`). As root: they start containers.

use harness::transcripts::{TRANSCRIPTS, dir, render};

fn main() {
    harness::require_root();
    harness::host::remove_runtime_leftovers_at_exit();
    let bins = harness::workspace_root().join("target/debug");
    std::fs::create_dir_all(dir()).expect("make book/src/transcripts");
    for t in TRANSCRIPTS {
        let path = dir().join(format!("{}.console", t.name));
        std::fs::write(&path, render(t, &bins)).expect("write a transcript");
        println!("wrote {}", path.display());
    }
}
