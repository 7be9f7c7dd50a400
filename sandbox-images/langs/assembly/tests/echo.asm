section .bss
    buf resb 4096
section .text
    global _start
_start:
.loop:
    xor rax, rax            ; read(0, buf, 4096)
    xor rdi, rdi
    mov rsi, buf
    mov rdx, 4096
    syscall
    cmp rax, 0
    jle .done
    mov rdx, rax            ; write(1, buf, n)
    mov rax, 1
    mov rdi, 1
    mov rsi, buf
    syscall
    jmp .loop
.done:
    mov rax, 60
    xor rdi, rdi
    syscall
