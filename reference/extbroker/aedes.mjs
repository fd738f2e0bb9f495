// Written by rtcomm-harness (reference/extbroker): aedes with its WebSocket server factory,
// one plain MQTT listener and one MQTT-over-WebSocket listener on loopback.
// Usage: node aedes.mjs MODULES_DIR TCP_PORT WS_PORT
// MODULES_DIR is where `npm install aedes aedes-server-factory` was run; the packages are
// resolved from there (an ES module ignores NODE_PATH).
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [modulesDir, tcpPort, wsPort] = process.argv.slice(2)
const req = createRequire(join(modulesDir, 'package.json'))
const load = async (name) => import(pathToFileURL(req.resolve(name)).href)

const { Aedes } = await load('aedes')
const factory = (await load('aedes-server-factory')).default
const broker = await Aedes.createBroker()
const tcp = factory.createServer(broker)
// aedes-server-factory's ws option: a "ws" WebSocket.Server on an http server; it accepts any
// path and echoes the first subprotocol the client asks for.
const ws = factory.createServer(broker, { ws: true })
const listen = (srv, port) => new Promise((resolve, reject) => {
  srv.once('error', reject)
  srv.listen(Number(port), '127.0.0.1', resolve)
})
await listen(tcp, tcpPort)
await listen(ws, wsPort)
const stop = () => {
  tcp.close()
  ws.close()
  broker.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 1000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
console.log(`aedes ready: tcp ${tcpPort} ws ${wsPort}`)
