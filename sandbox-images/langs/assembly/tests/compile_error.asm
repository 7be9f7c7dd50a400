section .text
    global _start
_start:
    mov rax, nowhere_defined
    bogus_instruction rax
