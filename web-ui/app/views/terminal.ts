// The terminal's heavy part, loaded with import() from logs.tsx so xterm.js is its own chunk:
// an xterm.js terminal over a Kubernetes remote-command WebSocket (`v5.channel.k8s.io` or
// `v4.channel.k8s.io`). Every message is binary and starts with its channel: 0 stdin, 1 stdout,
// 2 stderr, 3 the final Status (JSON), 4 the terminal size (JSON {Width, Height}); v5 adds 255
// (close a channel).

import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;

export interface TerminalOptions {
  url: string;
  protocols: string[];
  onOpen: () => void;
  /** The session's end, as the final Status says (or why the connection closed). */
  onEnd: (status: string) => void;
}

/** What the final Status on the error channel says. */
function describeStatus(json: string): string {
  try {
    const status = JSON.parse(json) as {
      status?: string;
      message?: string;
      reason?: string;
      details?: { causes?: { reason?: string; message?: string }[] };
    };
    if (status.status === 'Success') return 'Success';
    const exit = status.details?.causes?.find((c) => c.reason === 'ExitCode')?.message;
    if (status.reason === 'NonZeroExitCode' && exit) return `exit code ${exit}`;
    return status.message || status.reason || 'Failure';
  } catch {
    return json;
  }
}

function themeColours() {
  const css = getComputedStyle(document.documentElement);
  const v = (name: string) => css.getPropertyValue(name).trim();
  return { background: v('--code-bg'), foreground: v('--text'), cursor: v('--accent'), selectionBackground: v('--row-hover') };
}

export function openTerminal(host: HTMLElement, options: TerminalOptions): { dispose: () => void } {
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: getComputedStyle(document.documentElement).getPropertyValue('--mono').trim() || 'monospace',
    fontSize: 13,
    scrollback: 5000,
    theme: themeColours(),
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);
  fit.fit();

  const encoder = new TextEncoder();
  const socket = new WebSocket(options.url, options.protocols);
  socket.binaryType = 'arraybuffer';
  let status: string | null = null;
  let ended = false;

  const send = (channel: number, data: Uint8Array) => {
    if (socket.readyState !== WebSocket.OPEN) return;
    const message = new Uint8Array(data.length + 1);
    message[0] = channel;
    message.set(data, 1);
    socket.send(message);
  };
  const sendSize = () => send(RESIZE, encoder.encode(JSON.stringify({ Width: term.cols, Height: term.rows })));

  socket.onopen = () => {
    options.onOpen();
    sendSize();
    term.focus();
  };
  socket.onmessage = (event) => {
    if (!(event.data instanceof ArrayBuffer)) return;
    const data = new Uint8Array(event.data);
    if (data.length === 0) return;
    const payload = data.subarray(1);
    if (data[0] === STDOUT || data[0] === STDERR) term.write(payload);
    else if (data[0] === ERROR) status = describeStatus(new TextDecoder().decode(payload));
  };
  socket.onclose = (event) => {
    if (ended) return;
    ended = true;
    term.options.disableStdin = true;
    term.options.cursorBlink = false;
    options.onEnd(status ?? (event.code === 1000 ? 'closed' : `connection closed (${event.code}${event.reason ? `: ${event.reason}` : ''})`));
  };

  const input = term.onData((d) => send(STDIN, encoder.encode(d)));
  const binary = term.onBinary((d) => send(STDIN, Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)));
  const resized = term.onResize(sendSize);
  // The dashboard's theme can change while the terminal is open.
  const themeWatch = new MutationObserver(() => (term.options.theme = themeColours()));
  themeWatch.observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme'] });
  const observer = new ResizeObserver(() => {
    if (host.clientWidth > 0 && host.clientHeight > 0) fit.fit();
  });
  observer.observe(host);

  return {
    dispose() {
      ended = true;
      observer.disconnect();
      themeWatch.disconnect();
      input.dispose();
      binary.dispose();
      resized.dispose();
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.close(1000);
      term.dispose();
    },
  };
}
