// Turns the wrk summaries written by ./run into the result table and the JSON report.
//
// usage: node report.mjs RESULTS_DIR META_JSON [JSON_OUT]
//   RESULTS_DIR holds <scenario>.json (the BENCH_JSON line of a wrk run) or <scenario>.skipped
//   (the reason, as text); META_JSON is a JSON object with the run's settings.
// Exit status 1 when any scenario got an answer it didn't expect.

import { readFile, writeFile, access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';

const SCENARIOS = {
  bc_authorize: 'POST /backchannel (new CIBA request)',
  pending_poll: 'POST /token, CIBA grant, pending',
  client_credentials: 'POST /token, client_credentials',
};

const [resultsDir, metaArg, jsonOut] = process.argv.slice(2);
const meta = JSON.parse(metaArg);
const require = createRequire(import.meta.url);
const { version } = require('oidc-provider/package.json');

const exists = (file) => access(file).then(() => true, () => false);
const ms = (us) => Math.round(us / 10) / 100;

const scenarios = {};
let unexpectedTotal = 0;
for (const name of Object.keys(SCENARIOS)) {
  const file = path.join(resultsDir, `${name}.json`);
  const skipped = path.join(resultsDir, `${name}.skipped`);
  if (await exists(skipped)) {
    scenarios[name] = { skipped: (await readFile(skipped, 'utf8')).trim() };
    continue;
  }
  if (!(await exists(file))) continue;
  const wrk = JSON.parse(await readFile(file, 'utf8'));
  const seconds = wrk.duration_us / 1e6;
  const { ok = 0, ...unexpectedAnswers } = wrk.answers;
  const unexpected = Object.values(unexpectedAnswers).reduce((a, b) => a + b, 0);
  const socketErrors = Object.values(wrk.socket_errors).reduce((a, b) => a + b, 0);
  unexpectedTotal += unexpected + socketErrors;
  const result = {
    description: SCENARIOS[name],
    rps: Math.round((wrk.requests / seconds) * 10) / 10,
    expected_answers_per_s: Math.round((ok / seconds) * 10) / 10,
    requests: wrk.requests,
    seconds: Math.round(seconds * 100) / 100,
    latency_ms: Object.fromEntries(
      Object.entries(wrk.latency_us).map(([k, v]) => [k, ms(v)]),
    ),
    // Server CPU per request holds up better than req/s when something else shares the CPUs;
    // a utilisation well under 1.0 per process means the server was starved, not idle.
    server_cpu_ms_per_request: Math.round((wrk.server_cpu_s / wrk.requests) * 1e6) / 1e3,
    server_cpu_utilisation: Math.round((wrk.server_cpu_s / wrk.wall_s) * 100) / 100,
    wrk_cpu_utilisation: Math.round((wrk.wrk_cpu_s / wrk.wall_s) * 100) / 100,
    // CPUs' worth of everything else on the machine during the measured run (0 on a quiet one).
    others_cpu_utilisation: Math.max(0, Math.round(
      ((wrk.machine_cpu_s - wrk.server_cpu_s - wrk.wrk_cpu_s) / wrk.wall_s) * 100,
    ) / 100),
    expected_answers: ok,
    unexpected_answers: unexpectedAnswers,
    socket_errors: wrk.socket_errors,
  };
  if (name === 'pending_poll' && meta.pool) {
    // Every id is polled once per pass through the pool.
    result.pool_size = meta.pool;
    result.seconds_between_polls_of_one_id = Math.round((meta.pool / (wrk.requests / seconds)) * 100) / 100;
  }
  scenarios[name] = result;
}

const report = {
  server: 'node-oidc-provider',
  version,
  node: process.version,
  processes: meta.workers,
  store: 'default in-memory adapter (per process, LRU of about 1000 entries)',
  settings: {
    duration_s: meta.duration,
    warmup_s: meta.warmup,
    connections: meta.connections,
    wrk_threads: meta.threads,
  },
  machine: {
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model,
    platform: `${os.type()} ${os.release()}`,
  },
  started_at: meta.started_at,
  machine_load: {
    cpu_busy_before: meta.cpu_busy_before,
    loadavg_before: meta.loadavg_before,
    loadavg_after: meta.loadavg_after,
  },
  scenarios_wall_s: meta.scenarios_wall_s,
  scenarios,
};

const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
console.log('');
console.log(`node-oidc-provider ${version} on Node.js ${process.version}, ${meta.workers} process(es), `
  + `wrk -t${meta.threads} -c${meta.connections} -d${meta.duration}s (after ${meta.warmup}s warm-up)`);
console.log(`machine: CPUs ${Math.round(meta.cpu_busy_before * 100)}% busy before the run, `
  + `load ${meta.loadavg_before} before, ${meta.loadavg_after} after; scenarios took ${meta.scenarios_wall_s}s`);
console.log(`${pad('scenario', 20)}${lpad('req/s', 10)}${lpad('p50 ms', 9)}${lpad('p95 ms', 9)}`
  + `${lpad('p99 ms', 9)}${lpad('requests', 10)}${lpad('cpu ms/req', 12)}${lpad('cpu use', 9)}`
  + `${lpad('others', 8)}  unexpected`);
for (const [name, r] of Object.entries(scenarios)) {
  if (r.skipped) {
    console.log(`${pad(name, 20)}  skipped: ${r.skipped}`);
    continue;
  }
  const unexpected = Object.entries(r.unexpected_answers).map(([k, v]) => `${k} x${v}`);
  for (const [k, v] of Object.entries(r.socket_errors)) if (v) unexpected.push(`socket ${k} x${v}`);
  console.log(`${pad(name, 20)}${lpad(r.rps.toFixed(1), 10)}${lpad(r.latency_ms.p50.toFixed(2), 9)}`
    + `${lpad(r.latency_ms.p95.toFixed(2), 9)}${lpad(r.latency_ms.p99.toFixed(2), 9)}`
    + `${lpad(r.requests, 10)}${lpad(r.server_cpu_ms_per_request.toFixed(3), 12)}`
    + `${lpad(r.server_cpu_utilisation.toFixed(2), 9)}${lpad(r.others_cpu_utilisation.toFixed(2), 8)}`
    + `  ${unexpected.join(', ') || 'none'}`);
}
console.log('cpu ms/req and cpu use: the server\'s processes; others: CPUs used by everything but '
  + 'the server and wrk during the run (anything over about 0.1 skews the figures)');
if (scenarios.pending_poll?.seconds_between_polls_of_one_id !== undefined) {
  const p = scenarios.pending_poll;
  console.log(`pending_poll: ${p.pool_size} auth_req_ids, each polled about every `
    + `${p.seconds_between_polls_of_one_id}s (node-oidc-provider has no polling-interval check)`);
}

if (jsonOut) {
  await writeFile(jsonOut, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`JSON written to ${jsonOut}`);
}
if (unexpectedTotal) {
  console.error(`\n${unexpectedTotal} unexpected answer(s) or socket error(s); see the table`);
  process.exit(1);
}
