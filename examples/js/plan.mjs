#!/usr/bin/env node
// Runs the wasmig migration component from Node.js, through the ES module
// `npm run transpile` (jco) writes into gen/. The component imports nothing,
// so the generated module needs no WASI shim. Two modes:
//
//   node plan.mjs steps [--catalog FILE] [--from REV] [--to REV]
//       Prints the planned steps as canonical JSON (no database needed).
//   node plan.mjs migrate            (needs DATABASE_URL)
//       Reads the live catalog, plans from nothing to the last revision, runs
//       the steps with node-postgres, then verifies (exit 1 on findings).

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const USAGE = 'usage: node plan.mjs steps [--catalog FILE] [--from REV] [--to REV] | node plan.mjs migrate';
const CANONICAL_KEYS = ['direction', 'lock', 'objects', 'revision', 'sql', 'summary', 'transactional'];

let migrations;
try {
  ({ migrations } = await import('./gen/migrations.js'));
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
  console.error('error: gen/migrations.js is missing: run `npm run transpile` (WASMIG_PLUGIN=path/to/plugin.wasm) first');
  process.exit(2);
}

class PlanError extends Error {
  constructor({ kind, message }) {
    super(`${kind}: ${message}`);
    this.kind = kind;
  }
}

// jco throws a ComponentError whose `payload` is the `plan-error` record
// when a function returns `result::err`.
function call(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    if (e?.payload?.kind !== undefined) throw new PlanError(e.payload);
    throw e;
  }
}

const emptyCatalog = () => ({ tables: [], indexes: [], constraints: [], enums: [] });

// The steps JSON every language prints byte for byte the same: keys sorted,
// no spaces, UTF-8, one trailing newline.
function canonical(steps) {
  const rows = steps.map((s) => Object.fromEntries(CANONICAL_KEYS.map((k) => [k, s[k]])));
  return JSON.stringify(rows) + '\n';
}

function head() {
  const chain = migrations.revisions();
  return chain.length ? chain[chain.length - 1].id : undefined;
}

function steps(values) {
  const target = values.to ?? head();
  const live = values.catalog
    ? call(migrations.decodeCatalog, readFileSync(values.catalog, 'utf8'))
    // The chain's own catalog at --from, as `wasmig sql` plans without --catalog.
    : call(migrations.plan, undefined, values.from, emptyCatalog(), { resume: false, online: false, allowDataLoss: false, schema: undefined }).expected;
  const plan = call(migrations.plan, values.from, target, live, { resume: false, online: undefined, allowDataLoss: false, schema: undefined });
  process.stdout.write(Buffer.from(canonical(plan.steps), 'utf8'));
  return 0;
}

async function readCatalog(client) {
  const { rows } = await client.query({
    text: migrations.introspectionSql(),
    // $1: the schema to read; null = current_schema(), where the unqualified plan runs.
    values: [null],
    rowMode: 'array',
  });
  const value = rows[0][0];
  return call(migrations.decodeCatalog, typeof value === 'string' ? value : JSON.stringify(value));
}

async function migrate() {
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.error('error: set DATABASE_URL (postgres://USER:PASSWORD@HOST:PORT/DB)');
    return 2;
  }
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const target = head();
    const plan = call(migrations.plan, undefined, target, await readCatalog(client), { resume: false, online: undefined, allowDataLoss: false, schema: undefined });
    // Per revision: consecutive transactional steps share one transaction;
    // a non-transactional step runs alone, outside any transaction block.
    const segments = [];
    for (const s of plan.steps) {
      const last = segments[segments.length - 1];
      if (last && last.revision === s.revision && last.transactional === s.transactional) last.steps.push(s);
      else segments.push({ revision: s.revision, transactional: s.transactional, steps: [s] });
    }
    for (const seg of segments) {
      if (seg.transactional) {
        await client.query('BEGIN');
        try {
          for (const s of seg.steps) await client.query(s.sql);
          await client.query('COMMIT');
        } catch (e) {
          await client.query('ROLLBACK').catch(() => {});
          throw e;
        }
      } else {
        for (const s of seg.steps) await client.query(s.sql);
      }
      for (const s of seg.steps) console.log(`${seg.revision}: ${s.summary}`);
    }
    const findings = migrations.verify(target, await readCatalog(client));
    console.log(`applied ${plan.steps.length} step(s) up to ${target}; verify: ${findings.length} finding(s)`);
    for (const f of findings) {
      const where = f.location !== undefined ? ` ${f.location}:` : '';
      console.log(`${f.severity}[${f.rule}]${where} ${f.message}`);
    }
    return findings.length ? 1 : 0;
  } finally {
    await client.end();
  }
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { catalog: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' } },
  });
  const [mode] = positionals;
  try {
    if (mode === 'steps' && positionals.length === 1) return steps(values);
    if (mode === 'migrate' && positionals.length === 1) return await migrate();
    console.error(USAGE);
    return 2;
  } catch (e) {
    if (e instanceof PlanError) {
      console.error(`error: ${e.message}`);
      return 4;
    }
    throw e;
  }
}

process.exitCode = await main();
