/* cmdline.h: a command line as recorded with a run: quoted for a POSIX
 * shell, with secrets masked. Pure string code (no I/O). */
#ifndef DPO_CMDLINE_H
#define DPO_CMDLINE_H
#include "util/buf.h"

/* What a masked secret reads as. */
#define UTIL_REDACTED "***"

/* Append s to out quoted for a POSIX shell: as is when every byte is one
 * of A-Z a-z 0-9 _ @ % + = : , . / - (and s is not empty), else in single
 * quotes with each ' written as '\''. The same rule as Python's
 * shlex.quote, with its other spelling of the quote. */
void util_shell_quote(const char *s, util_buf *out);

/* Append the command line argv[0..argc-1] to out: argv[0] as its basename
 * (the program, not where it was run from), the arguments separated by
 * single spaces, each quoted by util_shell_quote after these secrets are
 * replaced by UTIL_REDACTED:
 *  - the value of an option whose name has a word (split at - and _) that
 *    is or ends with key, token, secret, password or passwd, unless its last
 *    word is env, file or path (those name where the secret is, e.g.
 *    --api-key-env): "--api-key X" (the next argument, unless it starts
 *    with --) and "--api-key=X". --max-tokens is not one (tokens is not
 *    token);
 *  - the same inside an argument's text (a command given to another
 *    program): words "--api-key X", "--api-key=X" and NAME=VALUE
 *    assignments such as "HF_TOKEN=X";
 *  - the password of a URL: "https://user:pw@host" -> "https://user:***@host";
 *  - the value of Authorization and (x-)api-key headers, anywhere in an
 *    argument, case-insensitively, up to the end of the line (or the
 *    closing quote when the header's name follows a quote); a leading
 *    scheme word is kept: "Authorization: Bearer ***".
 * argc 0 appends nothing. The strings are not changed. */
void util_cmdline_quote(int argc, char *const *argv, util_buf *out);

#endif
