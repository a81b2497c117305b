// Wraps the pinned Durable Streams conformance suite. The upstream CLI
// (`npx @durable-streams/server-conformance-tests --run URL`) finds no test
// files in 0.3.6 (upstream issue #284, fix in PR #407); remove this wrapper in
// favour of the CLI once a release with that fix is pinned.
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.CONFORMANCE_TEST_URL
if (!baseUrl) throw new Error("CONFORMANCE_TEST_URL is not set")

runConformanceTests({ baseUrl, longPollTimeoutMs: 1000 })
