// Node end to end: the package's Connection (over the `ws` package) through
// `framewire gateway` to Rust servers, in both gateway modes.
import test, { before, after } from 'node:test';
import WebSocket from 'ws';
import { fw, within } from './helpers.mjs';
import { scenarios } from './scenarios.mjs';
import { startServices } from './services.mjs';

let services;
before(async () => {
  services = await startServices();
});
after(async () => {
  await services?.stop();
});

for (const mode of ['stream', 'frame']) {
  for (const [name, run] of Object.entries(scenarios)) {
    test(`${name} (${mode} mode)`, { timeout: 60000 }, async () => {
      await within(55000, run({ fw, WebSocket, urls: services.urls[mode], mode }), `${name} ${mode}`);
    });
  }
}
