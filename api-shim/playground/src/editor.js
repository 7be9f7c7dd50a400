// The code editor: CodeMirror 6 with its basic setup, a dark theme, the syntax mode in a
// compartment (switched with the language), Tab indenting, and Mod-Enter (Ctrl-Enter,
// Cmd-Enter) to run.
import { basicSetup } from "codemirror";
import { EditorView, keymap } from "@codemirror/view";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { indentWithTab } from "@codemirror/commands";
import { indentUnit, syntaxHighlighting } from "@codemirror/language";
import { classHighlighter } from "@lezer/highlight";
import { oneDark } from "@codemirror/theme-one-dark";
import { modeExtension } from "./modes.js";

export function createEditor(parent, { onRun }) {
  const language = new Compartment();
  const run = () => { onRun(); return true; };
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: "",
      extensions: [
        Prec.highest(keymap.of([{ key: "Mod-Enter", run, preventDefault: true }])),
        basicSetup,
        keymap.of([indentWithTab]),
        indentUnit.of("    "),
        EditorState.tabSize.of(4),
        oneDark,
        // Stable class names (tok-keyword, tok-string, ...) besides the theme's colours.
        syntaxHighlighting(classHighlighter),
        language.of([]),
        EditorView.theme({ "&": { height: "100%" }, ".cm-scroller": { overflow: "auto" } }),
      ],
    }),
  });
  return {
    view,
    getCode: () => view.state.doc.toString(),
    setCode: (text) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
    setMode: (mode) => view.dispatch({ effects: language.reconfigure(modeExtension(mode)) }),
    focus: () => view.focus(),
  };
}
