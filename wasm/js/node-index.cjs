'use strict';
// framewire for Node (CommonJS): the wasm module is loaded synchronously.
const wasm = require('./framewire_wasm.js');
const { makeApi } = require('../lib/api.cjs');

module.exports = { ...makeApi(wasm), version: '@VERSION@' };
