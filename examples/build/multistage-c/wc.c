/* wc-words: counts the words and lines of its standard input. */
#include <ctype.h>
#include <stdio.h>

int main(void) {
    long words = 0, lines = 0;
    int c, in_word = 0;
    while ((c = getchar()) != EOF) {
        if (c == '\n')
            lines++;
        if (isspace(c)) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    printf("%ld words, %ld lines\n", words, lines);
    return 0;
}
