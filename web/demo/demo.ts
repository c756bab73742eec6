// The demo page's only job: add the widget's one <script> tag as a website would, with the local
// stack's widget key and API (from /config.json, which `make run` serves beside the page).
interface DemoConfig {
  api_url: string;
  widget_key: string;
}

const config = (await (await fetch('/config.json', { cache: 'no-store' })).json()) as DemoConfig;
const tag = document.createElement('script');
tag.src = '/widget.js';
tag.async = true;
tag.dataset.key = new URLSearchParams(location.search).get('key') ?? config.widget_key;
tag.dataset.api = config.api_url;
document.body.append(tag);
export {};
