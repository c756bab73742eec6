// The widget's styles, inside its Shadow DOM: nothing here reaches the host page, nothing there
// reaches these. `:host { all: initial }` resets what inherits through the shadow boundary.
export const STYLES = `
:host { all: initial !important; display: block !important; position: fixed !important; right: 20px !important;
  bottom: 20px !important; z-index: 2147483000 !important; }
.launcher, .panel { font: 14px/1.4 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1d2430;
  letter-spacing: normal; word-spacing: normal; text-align: left; text-transform: none; }
* { box-sizing: border-box; }
button, input, textarea { font: inherit; }
:focus-visible { outline: 2px solid #2450d8; outline-offset: 2px; }
.launcher { background: #2450d8; color: #fff; border: 0; border-radius: 999px; padding: 12px 18px;
  box-shadow: 0 6px 20px rgba(0,0,0,.2); cursor: pointer; font-weight: 600; }
.panel { position: absolute; right: 0; bottom: 56px; width: min(360px, calc(100vw - 40px)); height: 480px;
  display: flex; flex-direction: column; background: #fff; border-radius: 14px; overflow: hidden;
  box-shadow: 0 12px 40px rgba(0,0,0,.22); }
.panel[hidden] { display: none; }
.head { display: flex; align-items: center; justify-content: space-between; background: #2450d8; color: #fff; padding: 10px 14px; }
h2 { margin: 0; font-size: 16px; }
.close { background: none; border: 0; color: #fff; font-size: 22px; cursor: pointer; line-height: 1; }
.status { margin: 0; padding: 6px 14px; background: #eef2ff; color: #27337a; font-size: 12px; }
.log { flex: 1; overflow: auto; list-style: none; margin: 0; padding: 12px; display: flex; flex-direction: column; gap: 8px; }
.msg { max-width: 80%; padding: 8px 11px; border-radius: 12px; background: #f1f3f6; align-self: flex-start; }
.msg.visitor { align-self: flex-end; background: #2450d8; color: #fff; }
.msg p { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.msg a { color: inherit; }
.meta { display: block; font-size: 11px; opacity: .8; margin-top: 2px; }
.typing { margin: 0; padding: 0 14px; min-height: 18px; font-size: 12px; color: #5b6472; font-style: italic; }
.email { padding: 8px 14px; display: grid; gap: 6px; font-size: 12px; }
.email[hidden] { display: none; }
.email input { padding: 6px; border: 1px solid #cfd5dd; border-radius: 6px; width: 100%; }
.compose { display: flex; gap: 6px; padding: 10px; border-top: 1px solid #e3e6ea; align-items: flex-end; }
.compose textarea { flex: 1; resize: none; border: 1px solid #cfd5dd; border-radius: 8px; padding: 7px; }
.compose button, .email button { background: #2450d8; color: #fff; border: 0; border-radius: 8px; padding: 8px 12px; cursor: pointer; }
.file { position: relative; overflow: hidden; color: #2450d8; cursor: pointer; padding: 8px 4px; }
.file input { position: absolute; inset: 0; opacity: 0; cursor: pointer; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;
