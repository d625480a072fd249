// One host's membership source and nothing else, for tests and the demo: it
// loads a dpr configuration, runs the source it names, and prints one JSON
// line per event on stdout:
//   {"event":"started","self":0,"hosts":[...]}   registered: the first list
//   {"event":"hosts","hosts":[...]}               each later list
//   {"event":"status","status":{...}}             after a line "status" on stdin
//   {"event":"stopped"}                           after a line "stop" (it left: lease revoked), then it exits
// Logs go to stderr.
//
//   node membership-agent.js --config host.json
import readline from 'node:readline';
import winston from 'winston';
import { loadConfig } from '../lib/config';
import { createSource } from '../lib/membership';

const file = process.argv[process.argv.indexOf('--config') + 1];
if (!process.argv.includes('--config') || !file) {
  process.stderr.write('usage: membership-agent --config FILE\n');
  process.exit(2);
}
const config = loadConfig({ file });
const levels = ['error', 'warn', 'info', 'debug'];
const log = winston.createLogger({
  level: config.log.level,
  format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
  transports: [new winston.transports.Console({ stderrLevels: levels })],
}).child({ module: 'membership' });
const source = createSource(config, log);
const say = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');

source.on('hosts', (hosts) => say({ event: 'hosts', hosts }));
source.start().then(
  (m) => say({ event: 'started', self: m.self, hosts: m.hosts }),
  (err: Error) => log.info('not started', { error: err.message }),
);
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'status') say({ event: 'status', status: source.status() });
  if (line === 'stop') {
    void source.stop().then(() => {
      say({ event: 'stopped' });
      process.exit(0);
    });
  }
});
