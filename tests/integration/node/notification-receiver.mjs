// The HTTPS notification endpoint of the ping checks (ciba-ping.mjs, ciba-mtls.mjs,
// ciba-dpop.mjs): records every request made to it and answers POST /cb with 204.
import { createServer } from 'node:https'

export const CALLBACK_PATH = '/cb'
const MAX_BODY = 64 * 1024

// The notification endpoint: records every request made to it, answers pings with 204.
export function startReceiver({ cert, key, port }) {
  const requests = []
  const waiters = []
  const server = createServer({ cert, key }, (req, res) => {
    const chunks = []
    let size = 0
    req.on('data', (chunk) => {
      size += chunk.length
      if (size <= MAX_BODY) {
        chunks.push(chunk)
      }
    })
    req.on('end', () => {
      const record = {
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        tooLarge: size > MAX_BODY,
      }
      requests.push(record)
      const ok = req.method === 'POST' && req.url === CALLBACK_PATH && !record.tooLarge
      res.writeHead(ok ? 204 : req.url === CALLBACK_PATH ? 400 : 404)
      res.end()
      for (const resolve of waiters.splice(0)) {
        resolve()
      }
    })
    req.on('error', () => {})
  })
  server.on('tlsClientError', () => {})
  const ready = new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })

  // The first request from index ``index`` on, or a timeout error.
  async function next(index, signal) {
    while (requests.length <= index) {
      signal.throwIfAborted()
      await new Promise((resolve, reject) => {
        waiters.push(resolve)
        signal.addEventListener('abort', () => reject(signal.reason), { once: true })
      })
    }
    return requests[index]
  }

  function close() {
    server.closeAllConnections?.()
    return new Promise((resolve) => server.close(() => resolve()))
  }

  return { ready, requests, next, close }
}

