// Starts `nnspec lsp` for .nn files. Highlighting needs none of this (the grammar is
// static); the server needs `npm install` in this folder (vscode-languageclient) and
// nnspec installed with its `lsp` extra. See README.md.
const vscode = require("vscode");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("nnspec").get("server.command", ["nnspec", "lsp"]);
  if (!Array.isArray(command) || command.length === 0) {
    return; // the server is turned off
  }
  let lc;
  try {
    lc = require("vscode-languageclient/node");
  } catch (err) {
    vscode.window.showWarningMessage(
      "nnspec: run `npm install` in the extension's folder to get diagnostics and completion (" + err.message + ")");
    return;
  }
  const server = { command: command[0], args: command.slice(1) }; // stdin and stdout
  client = new lc.LanguageClient("nnspec", "nnspec", server, {
    documentSelector: [{ language: "nnspec" }],
  });
  client.start().catch((err) => {
    vscode.window.showErrorMessage(
      "nnspec: cannot start `" + command.join(" ") + "` (" + err.message + "); " +
      "install nnspec with `pip install 'nnspec[lsp]'` or set `nnspec.server.command`");
  });
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
