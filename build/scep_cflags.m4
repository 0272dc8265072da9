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

# SCEP_ADD_CFLAGS(VARIABLE, FLAGS)
# ---------------------------------
# Appends to the shell variable VARIABLE each of the whitespace-separated
# FLAGS that the C compiler accepts. A flag is accepted when a trivial
# program compiles with it and -Werror, so a compiler that merely warns
# about an unknown option (clang) does not get it either. -Wno-X is tested
# as -WX: GCC accepts any -Wno-X silently.
AC_DEFUN([SCEP_ADD_CFLAGS], [
    AC_REQUIRE([AC_PROG_CC])
    for scep_flag in m4_normalize([$2]); do
        AS_VAR_PUSHDEF([scep_cache], [scep_cv_cflag_$scep_flag])
        AC_CACHE_CHECK([whether $CC accepts $scep_flag], [scep_cache], [
            scep_save_CFLAGS=$CFLAGS
            CFLAGS="$CFLAGS -Werror $(echo "$scep_flag" | sed 's/^-Wno-/-W/')"
            AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [return 0;])],
                              [AS_VAR_SET([scep_cache], [yes])],
                              [AS_VAR_SET([scep_cache], [no])])
            CFLAGS=$scep_save_CFLAGS
        ])
        AS_VAR_IF([scep_cache], [yes], [$1="$$1 $scep_flag"])
        AS_VAR_POPDEF([scep_cache])
    done
])

# SCEP_ADD_LDFLAGS(VARIABLE, FLAGS)
# ----------------------------------
# Like SCEP_ADD_CFLAGS for flags that must be given both when compiling and
# when linking (sanitizers): a trivial program has to compile and link.
AC_DEFUN([SCEP_ADD_LDFLAGS], [
    AC_REQUIRE([AC_PROG_CC])
    for scep_flag in m4_normalize([$2]); do
        AS_VAR_PUSHDEF([scep_cache], [scep_cv_ldflag_$scep_flag])
        AC_CACHE_CHECK([whether $CC links with $scep_flag], [scep_cache], [
            scep_save_CFLAGS=$CFLAGS
            scep_save_LDFLAGS=$LDFLAGS
            CFLAGS="$CFLAGS $scep_flag"
            LDFLAGS="$LDFLAGS $scep_flag"
            AC_LINK_IFELSE([AC_LANG_PROGRAM([], [return 0;])],
                           [AS_VAR_SET([scep_cache], [yes])],
                           [AS_VAR_SET([scep_cache], [no])])
            CFLAGS=$scep_save_CFLAGS
            LDFLAGS=$scep_save_LDFLAGS
        ])
        AS_VAR_IF([scep_cache], [yes], [$1="$$1 $scep_flag"],
                  [AC_MSG_ERROR([$CC cannot build with $scep_flag])])
        AS_VAR_POPDEF([scep_cache])
    done
])
