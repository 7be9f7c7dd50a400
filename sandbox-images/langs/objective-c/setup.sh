# The GNUstep compile and link flags, computed once (gnustep-config runs make each time), as
# Judge0 uses them: without -W options, without -shared-libgcc; and without the build user's
# own GNUstep directories (/root/GNUstep) and dependency files (-MMD -MP).
mkdir -p /usr/local/lib/rce/objective-c
gnustep-config --objc-flags | sed 's/-W[^ ]* //g; s/-MMD //; s/-MP //; s/ -I\/root[^ ]*//g' >/usr/local/lib/rce/objective-c/cflags
gnustep-config --base-libs | sed 's/-shared-libgcc//; s/ -L\/root[^ ]*//g' >/usr/local/lib/rce/objective-c/libs
test -s /usr/local/lib/rce/objective-c/cflags
test -s /usr/local/lib/rce/objective-c/libs
cat /usr/local/lib/rce/objective-c/cflags /usr/local/lib/rce/objective-c/libs
