#import <Foundation/Foundation.h>
int main(void) { NSString *s = 42 return 0; }
