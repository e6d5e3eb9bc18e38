// The README's references resolve inside the repository: every relative Markdown link, and every repository path
// it names in backticks (docs/, examples/, src/, test/, scripts/, bench/, cmake/), exists; the docs it points to
// link only to files that exist too. No reference to a file outside the repository (protocol.md, data/em/...)
// without saying where that comes from.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";

const linksOf = (file: string): string[] =>
  [...readFileSync(file, "utf8").matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)].map((m) => m[1]!).filter((target) => !/^[a-z]+:/.test(target));

describe("README references", () => {
  it("every relative link in README.md and docs/*.md points to an existing file", () => {
    for (const file of ["README.md", "docs/study.md", "docs/datasets.md"]) {
      expect(existsSync(file), file).toBe(true);
      for (const target of linksOf(file)) expect(existsSync(join(dirname(file), target)), `${file} -> ${target}`).toBe(true);
    }
  });

  it("every repository path named in backticks exists (globs and placeholders aside)", () => {
    const text = readFileSync("README.md", "utf8");
    const paths = [...text.matchAll(/`((?:docs|examples|src|test|scripts|bench|cmake)\/[^`\s]*)`/g)].map((m) => m[1]!);
    expect(paths.length).toBeGreaterThan(5);
    for (const path of paths) {
      if (/[*{]|\.\.\./.test(path)) continue;
      const clean = path.replace(/[.,:;]$/, "");
      expect(existsSync(clean), clean).toBe(true);
    }
  });

  it("names no file of the study that is not here unless it says where it comes from", () => {
    const text = readFileSync("README.md", "utf8");
    expect(text).not.toMatch(/protocol\.md/);
    for (const line of text.split("\n").filter((l) => l.includes("data/em/"))) {
      const index = text.indexOf(line);
      expect(text.slice(Math.max(0, index - 400), index + line.length + 400), line).toMatch(/docs\/datasets\.md/);
    }
  });
});
