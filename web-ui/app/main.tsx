import { render } from 'preact';
import { App } from './app';
import { applyTheme, theme } from './state';
import './styles.css';

applyTheme(theme.get());
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => applyTheme(theme.get()));
render(<App />, document.getElementById('app')!);
