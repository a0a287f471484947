// ioredis, or its fork iovalkey, with its default options: one 50-review
// pipeline, SRS.DUE, and an unknown command followed by a good one on the
// same connection. Prints a JSON report for cmd/srsproxy/clients_test.go.
// With "cluster" for the protocol it runs the same session through
// Redis.Cluster, seeded with the sidecar's address (the sidecar answers
// CLUSTER SLOTS as one node owning every slot).
// Usage:
//   node ioredis.js host:port season player base_ms ioredis|iovalkey [2|3|cluster]
"use strict";
const { parseArgs, plan, toMap, typesOf, fail } = require("./session");

async function main() {
  const a = parseArgs(process.argv.slice(2));
  let Redis;
  try {
    Redis = require(a.pkg);
  } catch (e) {
    fail(`${a.pkg} is not installed: cd testdata/clients && npm ci (${e.message})`);
  }
  // Default options but the address (and protocol when given): the client
  // connects on its own and queues commands until its handshake is done.
  const opts = { host: a.host, port: a.port };
  let redis;
  if (a.cluster) {
    redis = new Redis.Cluster([opts]);
  } else {
    if (a.protocol !== undefined) opts.protocol = a.protocol;
    redis = new Redis(opts);
  }
  redis.on("error", (e) => process.stderr.write(`${a.pkg}: ${e.message}\n`));
  try {
    const report = { client: `${a.pkg}${a.cluster ? " Cluster" : ""} ${require(`${a.pkg}/package.json`).version}` };

    const pipe = redis.pipeline();
    for (const cmd of plan(a)) pipe.call(...cmd);
    const results = await pipe.exec();
    report.reviews = results.map(([err, reply], i) => {
      if (err) throw new Error(`review ${i}: ${err.message}`);
      return toMap(reply);
    });
    report.types = typesOf(results[0][1]);

    report.due = toMap(await redis.call("SRS.DUE", a.player, a.season));

    report.client_info_before = await redis.call("CLIENT", "INFO");
    try {
      await redis.call("SRS.NOPE", a.player);
      report.unknown_error = "";
    } catch (e) {
      report.unknown_error = e.message;
    }
    report.after = toMap(await redis.call("SRS.CARD", a.player, a.season, "q-00"));
    report.client_info_after = await redis.call("CLIENT", "INFO");
    process.stdout.write(JSON.stringify(report) + "\n");
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

main().catch((e) => fail(`ioredis.js: ${e.stack || e}`));
