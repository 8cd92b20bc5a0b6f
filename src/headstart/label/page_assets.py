"""The labelling page's HTML and script (served by headstart.label.page). Every value from the server is put
into the page with ``textContent`` or as an attribute of a created element, never parsed as HTML."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>headstart label</title>
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;color:#222}
main{max-width:820px;margin:2em auto;background:#fff;padding:1.5em 2em;border-radius:8px}
#progress{color:#555}#item{margin:1em 0;min-height:120px}#item img{max-width:100%;max-height:420px;
image-rendering:pixelated;min-width:160px}#item p{font-size:1.15em;white-space:pre-wrap}
#guess,#reason{color:#555;margin:.3em 0}#classes button{margin:.25em;padding:.5em 1em;font-size:1em}
#classes button.guess{border:2px solid #4C72B0}#classes kbd{color:#4C72B0}
kbd{background:#eee;border-radius:3px;padding:0 .3em}
#status{color:#4C72B0;min-height:1.2em}
</style></head>
<body><main>
<h1>Label</h1>
<div id="progress"></div>
<div id="item"></div>
<div id="guess"></div><div id="reason"></div>
<div id="classes"></div>
<p><button id="skip">skip <kbd>s</kbd></button> <button id="undo">undo <kbd>u</kbd></button></p>
<div id="status"></div>
<p id="help">Keys: <kbd>1</kbd>-<kbd>9</kbd>, <kbd>0</kbd> a class (as on its button), <kbd>s</kbd> skip,
<kbd>u</kbd> undo. Each answer is
written to the labels file at once; close the page or stop the server at any time.</p>
</main><script src="/page.js"></script></body></html>
"""

SCRIPT = """'use strict';
let state = null;
let busy = false;
const $ = (id) => document.getElementById(id);

function element(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

// Keys 1-9 answer the first nine classes, 0 the tenth.
const keyOf = (i) => String((i + 1) % 10);

function show(next) {
  state = next;
  const item = state.item;
  $('progress').textContent = state.labelled + ' labelled of ' + state.total + ', ' + state.left +
    ' left; answers go to ' + state.out;
  const box = $('item');
  box.replaceChildren();
  $('classes').replaceChildren();
  $('guess').textContent = '';
  $('reason').textContent = '';
  if (!item) {
    box.append(element('p', 'All suggested items are labelled. Fit on the labels file, then suggest more.'));
    document.body.dataset.id = '';
    return;
  }
  document.body.dataset.id = String(item.id);
  if (item.shown_as === 'writing') box.append(element('p', item.text));
  if (item.shown_as === 'picture') box.append(element('img', '', {src: '/api/file/' + item.id, alt: item.name}));
  if (item.shown_as === 'sound') {
    box.append(element('audio', '', {src: '/api/file/' + item.id, controls: '', preload: 'auto'}));
    box.append(element('img', '', {src: '/api/spectrogram/' + item.id, alt: 'spectrogram of ' + item.name}));
  }
  if (item.name) box.append(element('div', item.name));
  if (item.guess) $('guess').textContent = 'model: ' + item.guess + (item.probability ? ' ' + item.probability : '');
  if (item.reason) $('reason').textContent = 'why: ' + item.reason;
  state.classes.forEach((name, i) => {
    const button = element('button', '', {'data-label': name});
    if (i < 10) button.append(element('kbd', keyOf(i)), ' ');
    button.append(name);
    if (name === item.guess) button.className = 'guess';
    button.addEventListener('click', () => send('/api/label', {id: item.id, label: name}));
    $('classes').append(button);
  });
}

async function send(path, body) {
  if (busy) return;
  busy = true;
  try {
    const response = await fetch(path, {method: path === '/api/state' ? 'GET' : 'POST',
      headers: {'Content-Type': 'application/json'},
      body: path === '/api/state' ? undefined : JSON.stringify(body || {})});
    const next = await response.json();
    $('status').textContent = next.ok === false ? 'not saved: the page was out of date' : '';
    show(next);
  } catch (error) {
    $('status').textContent = 'the server did not answer: ' + error;
  } finally {
    busy = false;
  }
}

document.addEventListener('keydown', (event) => {
  if (!state || event.ctrlKey || event.metaKey || event.altKey) return;
  const item = state.item;
  if (event.key === 'u') return send('/api/undo', {id: -1});
  if (!item) return;
  if (event.key === 's') return send('/api/skip', {id: item.id});
  const index = [...Array(Math.min(10, state.classes.length)).keys()].find((i) => keyOf(i) === event.key);
  if (index !== undefined) send('/api/label', {id: item.id, label: state.classes[index]});
});
$('skip').addEventListener('click', () => state && state.item && send('/api/skip', {id: state.item.id}));
$('undo').addEventListener('click', () => send('/api/undo', {id: -1}));
send('/api/state');
"""
