#!/usr/bin/env python3
"""Lint a Dockerfile without a Docker engine.

Parses it with Docker's own parser (buildkit's, from the `dockerfile` package
that scripts/setup-test-env.sh installs into its venv), then checks the rules
below, hadolint-style. Prints one line per problem, `FILE:LINE: RULE: text`,
and exits 1 if there is any.

  DF000  the file parses, and every instruction is one Docker knows
  DF001  the first instruction is FROM, with an explicit tag that is not latest
  DF002  apt-get install is non-interactive (-y) and minimal (--no-install-recommends)
  DF003  a RUN that installs with apt-get removes /var/lib/apt/lists/* in the same layer
  DF004  packages come from scripts/setup-test-env.sh --packages-only, the one
         list CI uses, so the image and CI never drift apart
  DF005  no ADD of a URL (use curl in a RUN, checked), no ADD where COPY does
  DF006  CMD and ENTRYPOINT in exec (JSON) form
  DF007  a WORKDIR is set
"""

import sys

KNOWN = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
    "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL",
    "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}


def lint(path):
    import dockerfile

    problems = []

    def problem(line, rule, text):
        problems.append(f"{path}:{line}: {rule}: {text}")

    try:
        commands = dockerfile.parse_file(path)
    except dockerfile.GoParseError as e:
        return [f"{path}: DF000: does not parse: {e}"]
    if not commands:
        return [f"{path}: DF000: no instructions"]

    for c in commands:
        if c.cmd not in KNOWN:
            problem(c.start_line, "DF000", f"unknown instruction {c.cmd}")

    first = commands[0]
    if first.cmd != "FROM":
        problem(first.start_line, "DF001", "the first instruction must be FROM")
    else:
        image = first.value[0]
        name = image.split("@")[0]
        tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else None
        if "@" not in image and tag in (None, "latest"):
            problem(first.start_line, "DF001", f"pin the base image's tag ({image})")

    runs = [c for c in commands if c.cmd == "RUN"]
    script_used = False
    for c in runs:
        text = " ".join(c.value)
        if "apt-get install" in text:
            if " -y" not in text and "--yes" not in text:
                problem(c.start_line, "DF002", "apt-get install without -y")
            if "--no-install-recommends" not in text:
                problem(c.start_line, "DF002", "apt-get install without --no-install-recommends")
        if "setup-test-env.sh" in text:
            script_used = True
            if "--packages-only" not in text:
                problem(c.start_line, "DF004", "run setup-test-env.sh with --packages-only")
        installs = "apt-get install" in text or "setup-test-env.sh" in text
        if installs and "rm -rf /var/lib/apt/lists" not in text:
            problem(c.start_line, "DF003", "remove /var/lib/apt/lists/* in the RUN that installs")
    if not script_used:
        problem(first.start_line, "DF004", "install packages with scripts/setup-test-env.sh --packages-only")

    for c in commands:
        if c.cmd == "ADD":
            if any(v.startswith(("http://", "https://")) for v in c.value):
                problem(c.start_line, "DF005", "ADD of a URL: download with curl and check a checksum")
            elif not any(v.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz")) for v in c.value[:-1]):
                problem(c.start_line, "DF005", "use COPY, not ADD, for plain files")
        if c.cmd in ("CMD", "ENTRYPOINT") and not c.json:
            problem(c.start_line, "DF006", f"{c.cmd} in shell form; use the JSON form")

    if not any(c.cmd == "WORKDIR" for c in commands):
        problem(first.start_line, "DF007", "no WORKDIR")
    return problems


def main(argv):
    if len(argv) < 2:
        print("usage: lint-dockerfile.py DOCKERFILE...", file=sys.stderr)
        return 2
    try:
        import dockerfile  # noqa: F401
    except ImportError:
        print("lint-dockerfile: the dockerfile parser is missing; run scripts/setup-test-env.sh",
              file=sys.stderr)
        return 2
    problems = [p for path in argv[1:] for p in lint(path)]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
