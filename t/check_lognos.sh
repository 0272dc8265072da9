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

# The log tags of mod_scep/*.c (HACKING.md, "Log lines"). Fails, naming
# file and line, when
#  - a SCEPLOGNO(nnn) tag is written at more than one place;
#  - a log call of ours carries no literal SCEPLOGNO(nnn) tag: httpd's
#    ap_log_*error*() and every log helper of the tree, that is every
#    function of mod_scep/ with a `const char *tag` parameter (the tag a
#    helper is handed), a printf-like `const char *fmt, ...` or an
#    `int logno` one (the old bare number, always refused), and every macro
#    that calls one; a helper passes its own `tag` or `fmt` on, or a
#    message tagged before (named msg or ..._error) with "%s" as the format;
#  - a tag is formatted from a number ("SCEP%03d");
#  - a string writes an NDES event number itself ("(NDES event 29)",
#    "(NDES event %d)"): events come from the SCEP_EVENT_* enum, as
#    scep_event_text() words them.
# Usage: t/check_lognos.sh [DIR] (default: the tree's mod_scep).

set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${1:-mod_scep}
shopt -s nullglob
sources=("$DIR"/*.c)
headers=("$DIR"/*.h)
if [ ${#sources[@]} -eq 0 ]; then
    echo "check_lognos: no C files in $DIR" >&2
    exit 1
fi

# Comments are blanked (line numbers kept) before anything is looked at,
# preprocessor lines too for the calls: a macro that forwards to a helper
# is no call site.
perl -e '
use strict;
use warnings;

my $status = 0;
my (%tags, %loggers);

sub complain { print STDERR "check_lognos: @_\n"; $status = 1; }

# The text without comments; string and character literals kept.
sub strip_comments {
    my ($text) = @_;
    $text =~ s{("(?:\\.|[^"\\])*"|\x27(?:\\.|[^\x27\\])*\x27)|/\*.*?\*/|//[^\n]*}
              { defined $1 ? $1 : ($& =~ tr/\n//cdr) =~ s/^/ /r }gse;
    return $text;
}

sub line_of { my ($text, $pos) = @_; return 1 + (substr($text, 0, $pos) =~ tr/\n//); }

sub read_file {
    my ($file) = @_;
    open(my $fh, "<", $file) or die "check_lognos: $file: $!\n";
    local $/;
    my $text = <$fh>;
    close($fh);
    return strip_comments($text);
}

# Log helpers: functions and macros with a tag, fmt or logno parameter.
sub find_loggers {
    my ($text) = @_;
    while ($text =~ /\b([A-Za-z_]\w*)\s*\(([^()]*)\)/g) {
        my ($name, $params) = ($1, $2);
        next if $name =~ /^(?:if|while|for|switch|return|sizeof)$/;
        $loggers{$name} = 1
            if $params =~ /\bconst\s+char\s*\*\s*tag\s*(?:,|$)/
            || $params =~ /\bconst\s+char\s*\*\s*fmt\s*,\s*\.\.\./
            || $params =~ /\bint\s+logno\b/;
    }
}

# Macros that call a log helper: mod_scep_log_problem(...) for
# mod_scep_log_problem_at(APLOG_MARK, ...).
sub find_logger_macros {
    my ($text) = @_;
    while ($text =~ /^\s*#\s*define\s+([A-Za-z_]\w*)\([^)]*\)\s*([A-Za-z_]\w*)\s*\(/mg) {
        $loggers{$1} = 1 if $loggers{$2};
    }
}

# The arguments of the call whose "(" is at $pos, up to its ")".
sub call_args {
    my ($text, $pos) = @_;
    my $depth = 0;
    my $start = $pos + 1;
    while ($pos < length $text) {
        my $rest = substr($text, $pos);
        if ($rest =~ /^("(?:\\.|[^"\\])*"|\x27(?:\\.|[^\x27\\])*\x27)/) {
            $pos += length $1;
            next;
        }
        my $c = substr($text, $pos, 1);
        $depth++ if $c eq "(";
        $depth-- if $c eq ")";
        return substr($text, $start, $pos - $start) if $depth == 0;
        $pos++;
    }
    return undef;
}

my @files = @ARGV;
find_loggers(read_file($_)) for @files;
find_logger_macros(read_file($_)) for @files;
my @http = qw(ap_log_error ap_log_rerror ap_log_perror ap_log_cerror ap_log_cserror
              ap_log_error_ ap_log_rerror_ ap_log_perror_ ap_log_cerror_ ap_log_cserror_);
$loggers{$_} = 1 for @http;
my $names = join("|", map { quotemeta } sort keys %loggers);
my $calls = 0;

for my $file (grep { /\.c$/ } @files) {
    my $text = read_file($file);
    (my $code = $text) =~ s/^([ \t]*#(?:[^\n]*\\\n)*[^\n]*)/$1 =~ s{[^\n]}{ }gr/mge;

    while ($text =~ /SCEPLOGNO\((\w*)\)/g) {
        my ($tag, $where) = ($1, "$file:" . line_of($text, $-[0]));
        complain("$where: SCEPLOGNO($tag) is not three digits") unless $tag =~ /^\d{3}$/;
        push @{ $tags{$tag} }, $where;
    }
    while ($text =~ /"(?:\\.|[^"\\])*"/g) {
        my ($literal, $at) = ($&, $-[0]);
        complain("$file:" . line_of($text, $at) . ": a tag formatted from a number: $literal")
            if $literal =~ /SCEP%/;
        complain("$file:" . line_of($text, $at) . ": an NDES event number written in a string"
                 . " (use SCEP_EVENT_* and scep_event_text()): $literal")
            if $literal =~ /NDES event\s*(?:\d|%)/;
    }
    while ($code =~ /\b($names)\s*\(/g) {
        my ($name, $open) = ($1, $+[0] - 1);
        my $args = call_args($code, $open);
        next unless defined $args;
        (my $bare = $args) =~ s/"(?:\\.|[^"\\])*"/""/g;
        # A definition or declaration: its parameters have types.
        next if $bare =~ /\b[A-Za-z_]\w*\s+\**\s*[A-Za-z_]\w*\s*(?:,|$)/
             || $bare =~ /^\s*void\s*$/;
        $calls++;
        my $where = "$file:" . line_of($code, $open);
        my @found = ($args =~ /SCEPLOGNO\(/g);
        if (@found > 1) {
            complain("$where: $name() carries more than one tag");
        }
        elsif (!@found && $bare !~ /\b(?:tag|fmt|__VA_ARGS__)\b/
               && $args !~ /"%s"\s*,\s*[\w.>-]*(?:msg|error)\s*$/) {
            complain("$where: $name() without a literal SCEPLOGNO(nnn) tag"
                     . ($bare =~ /(?:^|,)\s*\d{3}\s*(?:,|$)/ ? " (a bare number?)" : ""));
        }
    }
}

for my $tag (sort keys %tags) {
    my @at = @{ $tags{$tag} };
    complain("SCEPLOGNO($tag) is used " . scalar(@at) . " times: @at") if @at > 1;
}
if (!$status) {
    printf "check_lognos: %d tags, each at one place; %d log calls, each with its literal tag;"
         . " no NDES event written by hand\n", scalar(keys %tags), $calls;
}
exit $status;
' "${sources[@]}" "${headers[@]}"
