#!/usr/bin/env node
// Compile every contracts/src/*.sol with the pinned solcjs (npm `solc`, see package.json) and
// write one artifact per source file: <out>/<Name>.json =
//   {"abi", "bytecode": "0x..", "compiler", "contractName", "deployedBytecode": "0x.."}
// Output is canonical (keys sorted recursively, 2-space indent, trailing newline) so a rebuild
// of unchanged sources is byte-identical; tests/unit/test_contract_artifacts.py relies on it.
//
// Usage: node contracts/build.js [--out DIR]   (default DIR: contracts/artifacts)
// Exit status: 0 on success; 1 with the compiler's messages on any compile error; 2 on bad usage.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const COMPILER = '0.8.30';
const SRC_DIR = path.join(__dirname, 'src');

function parseArgs(argv) {
  let out = path.join(__dirname, 'artifacts');
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--out' && i + 1 < argv.length) {
      out = path.resolve(argv[i + 1]);
      i += 1;
    } else {
      process.stderr.write(`usage: node contracts/build.js [--out DIR] (unexpected: ${argv[i]})\n`);
      process.exit(2);
    }
  }
  return { out };
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const sorted = {};
    for (const key of Object.keys(value).sort()) sorted[key] = sortKeys(value[key]);
    return sorted;
  }
  return value;
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  if (!solc.version().startsWith(`${COMPILER}+`)) {
    process.stderr.write(`solc ${solc.version()} found, ${COMPILER} required (contracts/package.json)\n`);
    process.exit(1);
  }
  const files = fs.readdirSync(SRC_DIR).filter((f) => f.endsWith('.sol')).sort();
  const sources = {};
  for (const file of files) {
    sources[file] = { content: fs.readFileSync(path.join(SRC_DIR, file), 'utf8') };
  }
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'cancun',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const messages = output.errors || [];
  for (const msg of messages) process.stderr.write(`${msg.formattedMessage || msg.message}\n`);
  if (messages.some((m) => m.severity === 'error')) {
    process.stderr.write('compilation failed\n');
    process.exit(1);
  }

  fs.mkdirSync(out, { recursive: true });
  const written = new Set();
  for (const file of files) {
    // One artifact per source: the contract named after its file (helpers such as
    // interfaces in the same file are not deployable on their own).
    const name = path.basename(file, '.sol');
    const compiled = (output.contracts[file] || {})[name];
    if (!compiled) {
      process.stderr.write(`${file}: no contract named ${name}\n`);
      process.exit(1);
    }
    const artifact = sortKeys({
      contractName: name,
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
      compiler: COMPILER,
    });
    fs.writeFileSync(path.join(out, `${name}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
    written.add(`${name}.json`);
  }
  // Drop artifacts whose source is gone, so the directory mirrors contracts/src exactly.
  for (const stale of fs.readdirSync(out).filter((f) => f.endsWith('.json') && !written.has(f))) {
    fs.unlinkSync(path.join(out, stale));
  }
  process.stdout.write(`wrote ${[...written].join(', ')} to ${out}\n`);
}

main();
