// Shared by ioredis.js and node-redis.js: the review plan every client runs,
// reply normalisation, and the JSON report that cmd/srsproxy/clients_test.go
// checks. Keep the plan in step with reviewPlan in clients_test.go.
"use strict";

// parseArgs reads "host:port season player base_ms package [protocol]":
// package is the npm name to require (an alias such as redis4 for an older
// major version of the same client).
function parseArgs(argv) {
  if (argv.length < 5) {
    fail(`usage: node ${require("path").basename(process.argv[1])} host:port season player base_ms package [2|3|cluster]`);
  }
  const [addr, season, player, base, pkg, protocol] = argv;
  const i = addr.lastIndexOf(":");
  return {
    host: addr.slice(0, i),
    port: Number(addr.slice(i + 1)),
    season,
    player,
    base: Number(base),
    pkg,
    cluster: protocol === "cluster",
    protocol: protocol === undefined || protocol === "cluster" ? undefined : Number(protocol),
  };
}

// plan returns the 50 SRS.REVIEW commands: ten questions reviewed five times,
// one minute apart; the last round is Again for even questions and Easy for
// odd ones, so exactly the five even questions are due afterwards.
function plan(a) {
  const cmds = [];
  for (let i = 0; i < 50; i++) {
    const k = i % 10;
    const round = Math.floor(i / 10);
    const grade = round < 4 ? 3 : k % 2 === 0 ? 1 : 4;
    cmds.push([
      "SRS.REVIEW", a.player, a.season, `q-${String(k).padStart(2, "0")}`, String(grade),
      "AT", String(a.base + i * 60000), "ID", `${a.player}-r-${i}`, "SUBJECT", "math",
    ]);
  }
  return cmds;
}

// value turns a reply element into a JSON value: Buffers become strings,
// JS Maps and flat arrays of map replies are left to toMap.
function value(v) {
  if (Buffer.isBuffer(v)) return v.toString();
  if (typeof v === "bigint") return Number(v);
  return v;
}

// kind names the JS shape of a reply: "map" or "array".
function kind(v) {
  return Array.isArray(v) ? "array" : "map";
}

// toMap turns a map reply (object, Map, or flat field/value array) into an
// object, recursing into "items".
function toMap(v) {
  let out = {};
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) {
    for (let i = 0; i + 1 < v.length; i += 2) out[value(v[i])] = v[i + 1];
  } else if (v instanceof Map) {
    for (const [k, x] of v) out[value(k)] = x;
  } else if (typeof v === "object") {
    out = { ...v };
  } else {
    throw new Error(`not a map reply: ${JSON.stringify(v)}`);
  }
  for (const k of Object.keys(out)) {
    out[k] = k === "items" ? out[k].map(toMap) : value(out[k]);
  }
  return out;
}

// typesOf records how a review reply arrived, so the test can tell RESP2
// shapes from RESP3 ones.
function typesOf(review) {
  const m = toMap(review);
  return {
    map: kind(review),
    duplicate: typeof m.duplicate === "boolean" ? "bool" : "int",
    stability: typeof m.stability === "number" ? "double" : "string",
  };
}

function fail(msg) {
  process.stderr.write(`${msg}\n`);
  process.exit(1);
}

module.exports = { parseArgs, plan, toMap, typesOf, fail };
