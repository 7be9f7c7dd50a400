#import <Foundation/Foundation.h>
#include <stdio.h>
int main(void) {
    NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
    NSData *data = [[NSFileHandle fileHandleWithStandardInput] readDataToEndOfFile];
    fwrite([data bytes], 1, [data length], stdout);
    [pool drain];
    return 0;
}
