#!/usr/bin/env node
// Compile contracts/src and contracts/test with the pinned solc-js (standard JSON) and write one artifact per
// contract: ABI, creation and runtime bytecode, compiler version, settings and a hash of the sources it was
// built from. The server loads these JSON files at run time, so it never needs node.
//
//   node contracts/script/build.mjs [--out DIR]     (default DIR: contracts/artifacts)

import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SOURCE_DIRS = ["src", "test"];
const SETTINGS = Object.freeze({
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "ipfs" },
});

const require = createRequire(import.meta.url);

function fail(message) {
  process.stderr.write(`build: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  let out = path.join(ROOT, "artifacts");
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === "--out" && i + 1 < argv.length) {
      out = path.resolve(argv[i + 1]);
      i += 1;
    } else {
      fail(`unknown argument ${argv[i]} (usage: build.mjs [--out DIR])`);
    }
  }
  return { out };
}

function loadSolc() {
  const pinned = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).devDependencies.solc;
  let solc;
  try {
    solc = require("solc");
  } catch {
    fail("solc is not installed: run `npm ci --prefix contracts` first");
  }
  const version = solc.version();
  if (!version.startsWith(`${pinned}+`)) {
    fail(`solc ${version} is installed but package.json pins ${pinned}: run \`npm ci --prefix contracts\``);
  }
  return { solc, version, pinned };
}

function listSources() {
  const files = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.posix.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith(".sol")) files.push(rel);
    }
  };
  for (const dir of SOURCE_DIRS) walk(dir);
  return files.sort();
}

// Imports of packages ("@openzeppelin/...") come from node_modules; every other path is relative to contracts/.
function resolveImport(importPath) {
  const base = importPath.startsWith("@") ? path.join(ROOT, "node_modules") : ROOT;
  const file = path.resolve(base, importPath);
  if (!file.startsWith(base + path.sep)) return { error: `import escapes its root: ${importPath}` };
  try {
    return { contents: fs.readFileSync(file, "utf8") };
  } catch {
    return { error: `not found: ${importPath} (run \`npm ci --prefix contracts\`)` };
  }
}

function compile(solc, files) {
  const sources = {};
  for (const file of files) sources[file] = { content: fs.readFileSync(path.join(ROOT, file), "utf8") };
  const input = {
    language: "Solidity",
    sources,
    settings: {
      ...SETTINGS,
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: resolveImport }));
  const diagnostics = output.errors ?? [];
  for (const d of diagnostics) process.stderr.write(`${d.formattedMessage ?? d.message}\n`);
  if (diagnostics.some((d) => d.severity === "error")) fail("compilation failed");
  return output;
}

// sha256 over (path NUL content NUL) of every source the contract is compiled from, in path order.
function sourceHash(sourcePaths) {
  const hash = createHash("sha256");
  for (const p of sourcePaths) {
    const { contents, error } = resolveImport(p);
    if (error) fail(error);
    hash.update(p).update("\0").update(contents).update("\0");
  }
  return `sha256:${hash.digest("hex")}`;
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const { solc, version, pinned } = loadSolc();
  const files = listSources();
  const output = compile(solc, files);

  const artifacts = new Map();
  for (const file of files) {
    for (const [name, contract] of Object.entries(output.contracts[file] ?? {})) {
      if (artifacts.has(name)) fail(`two contracts named ${name}: artifact names must be unique`);
      const sources = Object.keys(JSON.parse(contract.metadata).sources).sort();
      artifacts.set(name, {
        contractName: name,
        sourceName: file,
        abi: contract.abi,
        bytecode: `0x${contract.evm.bytecode.object}`,
        deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
        compiler: { name: "solc", version, npmPackage: `solc@${pinned}` },
        settings: SETTINGS,
        sources,
        sourceHash: sourceHash(sources),
      });
    }
  }

  fs.mkdirSync(out, { recursive: true });
  for (const entry of fs.readdirSync(out)) {
    if (entry.endsWith(".json")) fs.rmSync(path.join(out, entry));
  }
  for (const [name, artifact] of [...artifacts].sort(([a], [b]) => a.localeCompare(b))) {
    fs.writeFileSync(path.join(out, `${name}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
  }
  process.stdout.write(`build: ${artifacts.size} artifacts from ${files.length} sources -> ${out} (solc ${version})\n`);
}

main();
