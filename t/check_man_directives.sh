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

# Fails when the manual pages and the code disagree:
# - man/mod_scep.8: every directive (SCEP_DIRECTIVES and HACKING.md's table,
#   as t/check_conf_directives.sh --list gives them) has an entry in
#   DIRECTIVES, and every entry there is a directive; the same for the
#   directives of a <SCEPTemplate> section (mod_scep_template.c's table) in
#   TEMPLATE DIRECTIVES. An entry is a .TP whose next line starts with the
#   name in bold: \fBSCEPName\fR (a section: \fB<SCEPName\fR).
# - man/scepctl.8: every command of scepctl's command table (mod_scep/scepctl.c)
#   has a subsection (.SS name) and every subsection is a command; every long
#   option of a command's option table (but --help, under OPTIONS) is named
#   (\-\-option) in its subsection.

set -euo pipefail
cd "$(dirname "$0")/.."

MODMAN=man/mod_scep.8
CTLMAN=man/scepctl.8
SCEPCTL_C=mod_scep/scepctl.c

for f in "$MODMAN" "$CTLMAN" "$SCEPCTL_C"; do
    if [ ! -f "$f" ]; then
        echo "check_man_directives: $f is missing" >&2
        exit 1
    fi
done

status=0

# man_section FILE TITLE: the lines of the .SH TITLE section.
man_section() {
    awk -v title="$2" '/^\.SH / { on = ($0 == ".SH " title); next } on' "$1"
}

# man_entries: the names of the .TP entries of the section on stdin.
man_entries() {
    awk '/^\.TP/ { tp = 1; next }
         tp { if (match($0, /^\\fB<?[A-Za-z0-9]+\\fR/)) {
                  name = substr($0, 4, RLENGTH - 6); sub(/^</, "", name); print name }
              tp = 0 }' | sort -u
}

# compare WHAT EXPECTED GOT: complains about the names missing in GOT and
# those GOT has beyond EXPECTED.
compare() {
    local what=$1 expected=$2 got=$3 d
    if [ -z "$expected" ]; then
        echo "check_man_directives: no $what found in the code" >&2
        status=1
        return
    fi
    for d in $(comm -23 <(printf '%s\n' "$expected") <(printf '%s\n' "$got")); do
        echo "check_man_directives: $what $d is missing in $4" >&2
        status=1
    done
    for d in $(comm -13 <(printf '%s\n' "$expected") <(printf '%s\n' "$got")); do
        echo "check_man_directives: $4 names $what $d, which the code does not have" >&2
        status=1
    done
}

directives=$(t/check_conf_directives.sh --list | sort -u)
templates=$(t/check_conf_directives.sh --list-template | sort -u)
compare directive "$directives" "$(man_section "$MODMAN" DIRECTIVES | man_entries)" \
    "$MODMAN's DIRECTIVES"
compare "<SCEPTemplate> directive" "$templates" \
    "$(man_section "$MODMAN" "TEMPLATE DIRECTIVES" | man_entries)" "$MODMAN's TEMPLATE DIRECTIVES"

# scepctl's commands: { "name", name_options, ... } rows of commands[].
commands_rows() {
    sed -n '/^static const command_t commands\[\] *=/,/^};/p' "$SCEPCTL_C" |
        sed -nE 's/^[[:space:]]*\{ *"([a-z0-9-]+)", *([a-z0-9_]+),.*/\1 \2/p'
}

# options TABLE: the long options of an apr_getopt_option_t table (DB_OPTIONS
# expands to --db and --db-driver), --help left out.
options() {
    sed -n "/apr_getopt_option_t $1\[\] *=/,/NULL, 0, 0, NULL/p" "$SCEPCTL_C" |
        sed -nE -e 's/^[[:space:]]*DB_OPTIONS,?$/db\ndb-driver/p' \
            -e 's/.*\{ *"([a-z0-9-]+)", *OPT_.*/\1/p' | grep -vx help || true
}

# the lines of the subsection .SS NAME of scepctl.8
ctl_subsection() {
    awk -v name="$1" '/^\.S[HS] / { on = ($0 == ".SS " name); next } on' "$CTLMAN"
}

rows=$(commands_rows)
compare "scepctl command" "$(cut -d' ' -f1 <<<"$rows" | sort -u)" \
    "$(sed -nE 's/^\.SS ([a-z0-9-]+)$/\1/p' "$CTLMAN" | sort -u)" "$CTLMAN's subsections"
while read -r cmd table; do
    [ -n "$cmd" ] || continue
    text=$(ctl_subsection "$cmd")
    for opt in $(options "$table"); do
        grep -qF -- "\\-\\-${opt//-/\\-}" <<<"$text" || {
            echo "check_man_directives: scepctl $cmd --$opt is missing in $CTLMAN's $cmd" >&2
            status=1
        }
    done
done <<<"$rows"

if [ $status -eq 0 ]; then
    echo "check_man_directives: $MODMAN has all $(wc -w <<<"$directives") directives and" \
        "$(wc -w <<<"$templates") <SCEPTemplate> directives; $CTLMAN all" \
        "$(wc -l <<<"$rows") commands of scepctl and their options"
fi
exit $status
