#!/bin/bash
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

# Fails when a directive of the module's directive table (SCEP_DIRECTIVES
# in mod_scep/mod_scep_config.h, from which the command table is made) or
# of HACKING.md's directive table is not
# documented in the drop-in conf.d/scep.conf (as a setting or commented
# out) and in README's Directives section, or when scep.conf or README
# names a SCEP directive that exists in neither; and when a directive of a
# <SCEPTemplate> section (mod_scep/mod_scep_template.c's table) is missing
# in HACKING.md's template table, in scep.conf's template comments or in
# README's Directives section.

set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG_H=mod_scep/mod_scep_config.h
TEMPLATE_C=mod_scep/mod_scep_template.c
HACKING=HACKING.md
CONF=conf.d/scep.conf
README=README

for f in "$CONFIG_H" "$TEMPLATE_C" "$HACKING" "$CONF" "$README"; do
    if [ ! -f "$f" ]; then
        echo "check_conf_directives: $f is missing" >&2
        exit 1
    fi
done

# The directive names of the table: the first argument of each X() row of
# SCEP_DIRECTIVES, a string literal or a macro #defined to one. A section
# ("<SCEPTemplate") is named without its "<"; the directives inside a
# section are not in the table and not checked here.
code_directives() {
    local arg value
    sed -n '/^#define SCEP_DIRECTIVES(X)/,/[^\\]$/p' "$CONFIG_H" |
        sed -nE 's/^[[:space:]]*X\([[:space:]]*([^,[:space:]]+),.*/\1/p' |
        while read -r arg; do
            case "$arg" in
            \"*) value=$arg ;;
            *) value=$(sed -nE "s/^#[[:space:]]*define[[:space:]]+${arg}[[:space:]]+(\"[^\"]*\").*/\1/p" \
                mod_scep/*.h mod_scep/*.c | head -n 1) ;;
            esac
            if [ -z "$value" ]; then
                echo "check_conf_directives: cannot resolve directive name $arg" >&2
                echo "?$arg"
            else
                value=${value#\"}
                value=${value#<}
                echo "${value%\"}"
            fi
        done
}

# The first column of HACKING.md's directive table: | `SCEPName ARGS` | ...
# or | `<SCEPSection ARGS>` ... |
hacking_directives() {
    # shellcheck disable=SC2016 # the backquotes are Markdown, not a command
    sed -nE 's/^\|[[:space:]]*`<?(SCEP[A-Za-z0-9]+)[ `>].*/\1/p' "$HACKING"
}

# Directives scep.conf sets or shows commented out: first word of a line
# (a section's opening tag without its "<").
conf_directives() {
    sed -nE 's/^[[:space:]]*#?[[:space:]]*<?(SCEP[A-Za-z0-9]+)([[:space:]>].*)?$/\1/p' "$CONF" |
        sort -u
}

# README's Directives section: the lines below its underlined title up to
# the next underlined title (which is left out).
readme_section() {
    awk 'prev == "Directives" && /^-+$/ { on = 1; next }
         on && /^-+$/ { n--; exit }
         on { lines[n++] = $0 }
         { prev = $0 }
         END { for (i = 0; i < n; i++) print lines[i] }' "$README"
}

readme_directives() {
    readme_section | grep -oE '<?SCEP[A-Za-z0-9]+' | sed 's/^<//' | sort -u
}

# The directives inside a <SCEPTemplate> section: the names of
# mod_scep_template.c's template_directives table.
template_code_directives() {
    sed -n '/template_directive_t template_directives\[\] *=/,/^};/p' "$TEMPLATE_C" |
        sed -nE 's/^[[:space:]]*\{ *"([A-Za-z]+)",.*/\1/p' | sort -u
}

# template_documented DIRECTIVE FILE PATTERN: whether FILE documents
# DIRECTIVE, where PATTERN (an ERE, NAME standing for it) matches.
template_documented() {
    grep -qE "${3//NAME/$1}" "$2"
}

code=$(code_directives | sort -u)
hacking=$(hacking_directives | sort -u)

# --list: the directives (the table's and HACKING.md's), then --list-template:
# those of a <SCEPTemplate> section, one per line, for t/check_man_directives.sh.
case "${1:-}" in
--list)
    printf '%s\n' "$code" "$hacking" | grep -v '^?' | sort -u
    exit 0
    ;;
--list-template)
    template_code_directives
    exit 0
    ;;
esac
conf=$(conf_directives)
status=0

if [ -z "$code" ]; then
    echo "check_conf_directives: no directives found in $CONFIG_H" >&2
    status=1
fi
if [ -z "$hacking" ]; then
    echo "check_conf_directives: no directives found in $HACKING" >&2
    status=1
fi
if grep -q '^?' <<<"$code"; then
    status=1
fi

missing=$(comm -23 <(printf '%s\n' "$code" "$hacking" | grep -v '^?' | sort -u) <(printf '%s\n' "$conf"))
unknown=$(comm -13 <(printf '%s\n' "$code" "$hacking" | sort -u) <(printf '%s\n' "$conf"))
undocumented=$(comm -23 <(printf '%s\n' "$code" | grep -v '^?') <(printf '%s\n' "$hacking"))

for d in $missing; do
    where=
    grep -qx "$d" <<<"$code" && where="$CONFIG_H"
    grep -qx "$d" <<<"$hacking" && where="${where:+$where and }$HACKING"
    echo "check_conf_directives: $d (from $where) is missing in $CONF" >&2
    status=1
done
for d in $unknown; do
    echo "check_conf_directives: $CONF names $d, which is neither in $CONFIG_H nor in $HACKING" >&2
    status=1
done
for d in $undocumented; do
    echo "check_conf_directives: $d of $CONFIG_H is not in $HACKING's directive table" >&2
    status=1
done

readme=$(readme_directives)
known=$(printf '%s\n' "$code" "$hacking" | grep -v '^?' | sort -u)
for d in $(comm -23 <(printf '%s\n' "$known") <(printf '%s\n' "$readme")); do
    echo "check_conf_directives: $d is missing in $README's Directives section" >&2
    status=1
done
for d in $(comm -13 <(printf '%s\n' "$known") <(printf '%s\n' "$readme")); do
    echo "check_conf_directives: $README's Directives section names $d," \
        "which is neither in $CONFIG_H nor in $HACKING" >&2
    status=1
done

template=$(template_code_directives)
if [ -z "$template" ]; then
    echo "check_conf_directives: no <SCEPTemplate> directives found in $TEMPLATE_C" >&2
    status=1
fi
section=$(readme_section)
for d in $template; do
    # shellcheck disable=SC2016 # the backquotes are Markdown, not a command
    template_documented "$d" "$HACKING" '^\|[[:space:]]*`NAME[ `]' ||
        { echo "check_conf_directives: <SCEPTemplate> directive $d is not in $HACKING's table" >&2 && status=1; }
    template_documented "$d" "$CONF" '^[[:space:]]*#[[:space:]]+NAME([[:space:]]|$)' ||
        { echo "check_conf_directives: <SCEPTemplate> directive $d is missing in $CONF" >&2 && status=1; }
    grep -qw -- "$d" <<<"$section" ||
        { echo "check_conf_directives: <SCEPTemplate> directive $d is missing in $README's Directives section" >&2 && status=1; }
done

if [ $status -eq 0 ]; then
    echo "check_conf_directives: all $(wc -w <<<"$code") directives and $(wc -w <<<"$template")" \
        "<SCEPTemplate> directives are in $CONF, $README and $HACKING"
fi
exit $status
