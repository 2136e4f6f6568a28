//! `diagrams SOURCES PICTURES BOOK`: turn every text drawing in SOURCES
//! (`NAME.bob`, svgbob's ASCII art) into `PICTURES/NAME.svg`, then check the
//! chapters in BOOK: every `pictures/NAME.svg` a chapter shows has a source,
//! and every source is shown somewhere. `make book` runs it before mdbook,
//! so a picture is always drawn from its text, and a broken one fails the
//! build (mdbook itself does not check images).
//!
//! Why text: a drawing in a text file is reviewed, diffed and changed with
//! the code it explains, by anyone, without a drawing program.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [sources, pictures, book] = args.as_slice() else {
        eprintln!("usage: diagrams SOURCES_DIR PICTURES_DIR BOOK_SRC_DIR");
        return ExitCode::from(2);
    };
    match run(Path::new(sources), Path::new(pictures), Path::new(book)) {
        Ok(count) => {
            println!("diagrams: {count} pictures drawn into {pictures}");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in problems {
                eprintln!("diagrams: {p}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(sources: &Path, pictures: &Path, book: &Path) -> Result<usize, Vec<String>> {
    let fail = |e: String| vec![e];
    let mut drawn = BTreeSet::new();
    std::fs::create_dir_all(pictures)
        .map_err(|e| fail(format!("cannot make {}: {e}", pictures.display())))?;
    let entries = std::fs::read_dir(sources)
        .map_err(|e| fail(format!("cannot read {}: {e}", sources.display())))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".bob"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        let svg = draw(&text).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        let out = pictures.join(format!("{name}.svg"));
        std::fs::write(&out, svg)
            .map_err(|e| fail(format!("cannot write {}: {e}", out.display())))?;
        drawn.insert(name.to_owned());
    }
    let shown = shown_in(book).map_err(fail)?;
    let mut problems = Vec::new();
    for (chapter, name) in &shown {
        if !drawn.contains(name) {
            problems.push(format!(
                "{chapter} shows pictures/{name}.svg, but there is no {}/{name}.bob to draw it from",
                sources.display()
            ));
        }
    }
    for name in &drawn {
        if !shown.iter().any(|(_, n)| n == name) {
            problems.push(format!(
                "{}/{name}.bob is drawn but no chapter shows pictures/{name}.svg",
                sources.display()
            ));
        }
    }
    if problems.is_empty() {
        Ok(drawn.len())
    } else {
        Err(problems)
    }
}

/// The SVG of one drawing. A drawing must be plain text that svgbob turns
/// into something: an empty file, or one with tabs (whose width svgbob
/// cannot know), is a mistake.
fn draw(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the drawing is empty".into());
    }
    if let Some(n) = text.lines().position(|l| l.contains('\t')) {
        return Err(format!("line {} has a tab: draw with spaces", n + 1));
    }
    // svgbob's defaults: black on a white backdrop, readable on the book's
    // dark themes too. Its own size leaves out text in quotes (text it must
    // not read as lines: paths, parentheses), so the size is given: a
    // character cell is `scale` wide and twice as tall.
    let settings = svgbob::Settings::default();
    let columns = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let rows = text.lines().count();
    let width = (columns + 2) as f32 * settings.scale;
    let height = (rows + 1) as f32 * settings.scale * 2.0;
    Ok(svgbob::to_svg_with_override_size(
        text, &settings, width, height,
    ))
}

/// Every (chapter, NAME) for `pictures/NAME.svg` in the book's chapters.
fn shown_in(book: &Path) -> Result<Vec<(String, String)>, String> {
    let mut shown = Vec::new();
    let entries =
        std::fs::read_dir(book).map_err(|e| format!("cannot read {}: {e}", book.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let chapter = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for (i, _) in text.match_indices("pictures/") {
            let rest = &text[i + "pictures/".len()..];
            if let Some(end) = rest.find(".svg") {
                let name = &rest[..end];
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    shown.push((chapter.clone(), name.to_owned()));
                }
            }
        }
    }
    Ok(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drawing_becomes_an_svg() {
        let svg = draw("+---+\n| a |\n+---+\n").unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains(">a<"), "{svg}");
    }

    #[test]
    fn empty_drawings_and_tabs_are_refused() {
        assert!(draw("  \n").is_err());
        assert!(draw("a\tb").unwrap_err().contains("line 1"));
    }

    #[test]
    fn missing_and_unused_pictures_are_named() {
        let dir = std::env::temp_dir().join(format!("diagrams-test-{}", std::process::id()));
        let (sources, pictures, book) = (dir.join("d"), dir.join("p"), dir.join("b"));
        std::fs::create_dir_all(&sources).unwrap();
        std::fs::create_dir_all(&book).unwrap();
        std::fs::write(sources.join("drawn.bob"), "+-+\n").unwrap();
        std::fs::write(book.join("c.md"), "![x](pictures/missing.svg)\n").unwrap();
        let problems = run(&sources, &pictures, &book).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("no") && problems[0].contains("missing.bob"));
        assert!(problems[1].contains("drawn.bob is drawn but no chapter"));
    }
}
