// Starts the official Durable Streams Node reference server (in memory) for the
// Threadline benchmark. Usage:
//   node reference-server.mjs [--port N] [--long-poll-ms MS]
// Port 0 (the default) picks a free port. Prints one line `PORT <n>` on stdout
// once listening, then serves until SIGTERM/SIGINT.
import { DurableStreamTestServer } from "@durable-streams/server";

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const server = new DurableStreamTestServer({
  port: Number(arg("--port", "0")),
  host: "127.0.0.1",
  longPollTimeout: Number(arg("--long-poll-ms", "30000")),
});
const url = await server.start();
process.stdout.write(`PORT ${new URL(url).port}\n`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await server.stop();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
