// node-redis with its default options: one 50-review pipeline (the commands
// of one tick go out in one write), SRS.DUE, and an unknown command followed
// by a good one on the same connection. Prints a JSON report for
// cmd/srsproxy/clients_test.go. The package is redis (node-redis 6, RESP3
// unless told RESP: 2) or an alias of an older major version (redis4, RESP2
// only; redis5, RESP2 unless told RESP: 3). Usage:
//   node node-redis.js host:port season player base_ms redis|redis4|redis5 [2|3]
"use strict";
const { parseArgs, plan, toMap, typesOf, fail } = require("./session");

async function main() {
  const a = parseArgs(process.argv.slice(2));
  let redis;
  try {
    redis = require(a.pkg);
  } catch (e) {
    fail(`${a.pkg} (node-redis) is not installed: cd testdata/clients && npm ci (${e.message})`);
  }
  // Default options but the address (and protocol when given).
  const opts = { socket: { host: a.host, port: a.port } };
  if (a.protocol !== undefined) opts.RESP = a.protocol;
  const client = redis.createClient(opts);
  client.on("error", (e) => process.stderr.write(`node-redis: ${e.message}\n`));
  await client.connect();
  try {
    const report = { client: `node-redis ${require(`${a.pkg}/package.json`).version}` };

    // Commands issued in the same tick go out in one write: the pipeline.
    const replies = await Promise.all(plan(a).map((cmd) => client.sendCommand(cmd)));
    report.reviews = replies.map(toMap);
    report.types = typesOf(replies[0]);

    report.due = toMap(await client.sendCommand(["SRS.DUE", a.player, a.season]));

    report.client_info_before = await client.sendCommand(["CLIENT", "INFO"]);
    try {
      await client.sendCommand(["SRS.NOPE", a.player]);
      report.unknown_error = "";
    } catch (e) {
      report.unknown_error = e.message;
    }
    report.after = toMap(await client.sendCommand(["SRS.CARD", a.player, a.season, "q-00"]));
    report.client_info_after = await client.sendCommand(["CLIENT", "INFO"]);
    process.stdout.write(JSON.stringify(report) + "\n");
  } finally {
    // close() from node-redis 5 on; node-redis 4 has quit() and disconnect().
    const close = client.close ? () => client.close() : () => client.quit();
    await close().catch(() => (client.destroy ? client.destroy() : client.disconnect()));
  }
}

main().catch((e) => fail(`node-redis.js: ${e.stack || e}`));
