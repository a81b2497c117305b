// Streaming reverse proxy that adds `Authorization: Bearer $TOKEN` to every
// request, so the conformance suite (which sends no credentials) can run
// against a server with auth on. No dependencies.
//
//   TARGET_URL=http://127.0.0.1:4437 TOKEN=... node auth-proxy.mjs
//
// Listens on 127.0.0.1, port $PORT or 0 (any free port), and prints
// `LISTENING <port>` on stdout once ready. Bodies stream both ways (SSE and
// long-poll are never buffered); status, status text and every end-to-end
// header (repeated ones included) pass through unchanged; the client's Host
// header is kept, so Location URLs built from it point at the proxy. A client
// that disconnects aborts the upstream request.
import http from "node:http"
import { pipeline } from "node:stream"

const target = URL.canParse(process.env.TARGET_URL ?? "") && new URL(process.env.TARGET_URL)
const token = process.env.TOKEN
if (target.protocol !== "http:") throw new Error("TARGET_URL must be an http:// URL")
if (!token) throw new Error("TOKEN is not set")

// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection; Node sets
// its own framing (chunked or the forwarded content-length) on each side.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te", // codespell:ignore
  "trailer",
  "transfer-encoding",
  "upgrade",
])
const basePath = target.pathname.replace(/\/$/, "")

/** Copies a rawHeaders list minus hop-by-hop headers and names in `drop`. */
function forwardable(rawHeaders, drop = new Set()) {
  const listed = new Set()
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase()
    if (name === "connection") {
      for (const n of rawHeaders[i + 1].split(",")) listed.add(n.trim().toLowerCase())
    }
  }
  const out = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase()
    if (HOP_BY_HOP.has(name) || listed.has(name) || drop.has(name)) continue
    out.push(rawHeaders[i], rawHeaders[i + 1])
  }
  return out
}

const server = http.createServer((req, res) => {
  const headers = forwardable(req.rawHeaders, new Set(["authorization", "expect"]))
  headers.push("Authorization", `Bearer ${token}`)
  // A body waits for `100 Continue`: a server that answers early (413, 401)
  // may close without reading the body, and a body still in flight would make
  // that socket reset and lose the answer. After 1 s without word, send anyway.
  const hasBody = "transfer-encoding" in req.headers || Number(req.headers["content-length"]) > 0
  if (hasBody) headers.push("Expect", "100-continue")
  const upstream = http.request({
    protocol: target.protocol,
    hostname: target.hostname,
    port: target.port,
    method: req.method,
    path: basePath + req.url,
    headers,
  })
  let bodyStarted = false
  const sendBody = () => {
    if (bodyStarted) return
    bodyStarted = true
    clearTimeout(timer)
    pipeline(req, upstream, (err) => {
      if (err) upstream.destroy()
    })
  }
  const timer = hasBody ? setTimeout(sendBody, 1000) : undefined
  if (hasBody) upstream.on("continue", sendBody)
  else sendBody()

  upstream.on("response", (up) => {
    clearTimeout(timer)
    if (!bodyStarted) {
      // Answered without the body (Node's server discards it from the client).
      // The upstream connection now holds a half-sent request: close it.
      bodyStarted = true
      up.on("end", () => upstream.destroy())
    }
    res.writeHead(up.statusCode, up.statusMessage, forwardable(up.rawHeaders))
    res.flushHeaders() // an SSE or long-poll client may wait on headers alone
    pipeline(up, res, () => {})
  })
  upstream.on("error", (err) => {
    clearTimeout(timer)
    if (res.headersSent) {
      res.destroy(err)
    } else {
      res.writeHead(502, { "content-type": "text/plain" }).end(`auth-proxy: ${err.message}\n`)
    }
  })
  // Client gone before the response completed: drop the upstream request too.
  res.on("close", () => {
    clearTimeout(timer)
    if (!res.writableFinished) upstream.destroy()
  })
})

server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`)
})
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0))
}
