import { render } from 'preact';
import { App } from './app';
import { setTransport } from './api/transport';
import { muxTransport } from './api/transport-mux';
import { applyTheme, theme } from './state';
import './styles.css';

// Every watch of the tab shares one WebSocket (BENCHMARKS.md, "Dashboard watch transports").
setTransport(muxTransport);
applyTheme(theme.get());
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => applyTheme(theme.get()));
render(<App />, document.getElementById('app')!);
