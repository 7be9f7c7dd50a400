// The syntax modes the playground knows, by the name a Runtime gives in `spec.editorMode`.
// Lezer grammars where CodeMirror 6 has one; otherwise the CodeMirror 5 modes of
// @codemirror/legacy-modes. A name missing here (or no editorMode at all) is plain text.
import { StreamLanguage } from "@codemirror/language";
import { python } from "@codemirror/lang-python";
import { cpp } from "@codemirror/lang-cpp";
import { javascript } from "@codemirror/lang-javascript";
import { rust } from "@codemirror/lang-rust";
import { java } from "@codemirror/lang-java";
import { go } from "@codemirror/lang-go";
import { php } from "@codemirror/lang-php";
import { sql, SQLite } from "@codemirror/lang-sql";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { ruby } from "@codemirror/legacy-modes/mode/ruby";
import { lua } from "@codemirror/legacy-modes/mode/lua";
import { perl } from "@codemirror/legacy-modes/mode/perl";
import { haskell } from "@codemirror/legacy-modes/mode/haskell";
import { clojure } from "@codemirror/legacy-modes/mode/clojure";
import { erlang } from "@codemirror/legacy-modes/mode/erlang";
import { fortran } from "@codemirror/legacy-modes/mode/fortran";
import { pascal } from "@codemirror/legacy-modes/mode/pascal";
import { r } from "@codemirror/legacy-modes/mode/r";
import { cobol } from "@codemirror/legacy-modes/mode/cobol";
import { d } from "@codemirror/legacy-modes/mode/d";
import { oCaml } from "@codemirror/legacy-modes/mode/mllike";
import { octave } from "@codemirror/legacy-modes/mode/octave";
import { commonLisp } from "@codemirror/legacy-modes/mode/commonlisp";
import { gas } from "@codemirror/legacy-modes/mode/gas";
import { groovy } from "@codemirror/legacy-modes/mode/groovy";
import { csharp, scala, kotlin, objectiveC } from "@codemirror/legacy-modes/mode/clike";

const legacy = (parser) => () => StreamLanguage.define(parser);

export const MODES = {
  python: () => python(),
  cpp: () => cpp(),
  javascript: () => javascript(),
  typescript: () => javascript({ typescript: true }),
  rust: () => rust(),
  java: () => java(),
  go: () => go(),
  php: () => php(),
  sql: () => sql({ dialect: SQLite }),
  shell: legacy(shell),
  ruby: legacy(ruby),
  lua: legacy(lua),
  perl: legacy(perl),
  haskell: legacy(haskell),
  clojure: legacy(clojure),
  erlang: legacy(erlang),
  fortran: legacy(fortran),
  pascal: legacy(pascal),
  r: legacy(r),
  cobol: legacy(cobol),
  d: legacy(d),
  ocaml: legacy(oCaml),
  octave: legacy(octave),
  commonlisp: legacy(commonLisp),
  gas: legacy(gas),
  groovy: legacy(groovy),
  csharp: legacy(csharp),
  scala: legacy(scala),
  kotlin: legacy(kotlin),
  objectivec: legacy(objectiveC),
};

/// The language support for `mode`, or [] (plain text).
export function modeExtension(mode) {
  const make = mode && Object.prototype.hasOwnProperty.call(MODES, mode) ? MODES[mode] : null;
  return make ? make() : [];
}
