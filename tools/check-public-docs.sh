#!/usr/bin/env bash
# Lists public API of the Onyx libraries (the runtime layers Onyx re-exports, OnyxServe and OnyxGRPC) that has no `///` doc comment; exits 1 if any.
#   - declarations marked `public` or `open` (attribute lines such as `@inlinable` may sit between
#     the comment and the declaration);
#   - cases of a public enum and requirements of a public protocol (public without the keyword),
#     found by indentation: one level (4 spaces) inside the type's braces (one such type at a
#     time: a public enum nested in another is checked through its own `public` keyword only);
#   - exempt: witnesses of standard-library protocols, whose documentation DocC takes from the
#     protocol (`description`, `debugDescription`, `hash(into:)`, `==`, `<`, `init(from:)`,
#     `encode(to:)`).
# Usage: tools/check-public-docs.sh [folder …]   (default: every runtime target, OnyxServe and OnyxGRPC)
set -euo pipefail
cd "$(dirname "$0")/.."
folders=("$@")
[ ${#folders[@]} -gt 0 ] || folders=(Sources/OnyxCore Sources/OnyxIR Sources/OnyxKernels Sources/OnyxOperators
    Sources/Onyx Sources/OnyxServe Sources/OnyxGRPC)

find "${folders[@]}" -name '*.swift' -print0 | sort -z | xargs -0 awk '
    function indent(s) { match(s, /^ */); return RLENGTH }
    function report(what) { printf "%s:%d: %s\n", FILENAME, FNR, what; missing++ }
    FNR == 1 { documented = 0; depth = -1 }
    {
        line = $0
        text = line; sub(/^ +/, "", text)
        # The enclosing public enum or protocol ends at its closing brace.
        if (depth >= 0 && indent(line) == depth && text ~ /^}/) depth = -1

        decl = text
        while (decl ~ /^@[A-Za-z_]+(\([^)]*\))? +/) sub(/^@[A-Za-z_]+(\([^)]*\))? +/, "", decl)
        needsDoc = 0
        if (decl ~ /^(public|open (class|func|var|init|subscript)) / && decl !~ /^public (extension|import) /) needsDoc = 1
        if (depth >= 0 && indent(line) == depth + 4) {
            if (kind == "enum" && decl ~ /^case /) needsDoc = 1
            if (kind == "protocol" && decl ~ /^(func |var |init|static |mutating |associatedtype |subscript)/) needsDoc = 1
        }
        if (decl ~ /(var (description|debugDescription):|func hash\(into|func (==|<) ?\(|init\(from decoder|func encode\(to encoder)/) needsDoc = 0
        if (needsDoc && !documented) report(decl)

        if (decl ~ /^public (indirect )?(enum|protocol) / && depth < 0) {
            depth = indent(line)
            kind = (decl ~ /protocol/) ? "protocol" : "enum"
        }
        # An attribute on its own line keeps the comment above it attached to the declaration below.
        if (text ~ /^\/\/\//) documented = 1
        else if (text !~ /^@[A-Za-z_]+(\([^)]*\))?$/) documented = 0
    }
    END {
        if (missing > 0) { printf "%d public declarations without a /// doc comment\n", missing; exit 1 }
    }
'
