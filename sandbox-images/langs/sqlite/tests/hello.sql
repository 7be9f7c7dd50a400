SELECT 'hello, world';
