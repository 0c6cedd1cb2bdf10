// hvkvp 2.0's key test, alone: tests/patterns.rs runs it on every pattern
// of its corpus. Each pattern is compiled as 2.0's hvkvpfile.cpp did,
// std::regex(P, icase ? icase : basic), and tried on every key with
// regex_match (2.0's -m on) and regex_search (-m off). Built with
// -std=c++14 as 2.0 was (so __STRICT_ANSI__ is defined, which changes
// what libstdc++ takes), in the C locale, which 2.0 never left.
//
// Usage: stdregex KEYS CASES FIRST
//   KEYS: keys, each ended by a NUL. CASES: patterns, each a grammar byte
//   ('b' basic, 'i' icase) then the pattern, ended by a NUL.
// Prints, for case FIRST on, one line each:
//   N throw CODE        std::regex threw regex_error with this code
//   N MATCH SEARCH      one 0/1 per key, for regex_match and regex_search
// Each case gets CPU_MS of CPU time: past it SIGVTALRM ends the program,
// and a deep recursion in libstdc++'s matcher ends it with SIGSEGV; the
// caller counts the case it did not finish and starts again after it.
#include <regex>
#include <string>
#include <vector>
#include <fstream>
#include <iterator>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/time.h>
#include <unistd.h>

static const long CPU_MS = 300;

static std::vector<std::string> split(const char *path) {
    std::ifstream in(path, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t i = 0; i < all.size(); i++)
        if (all[i] == '\0') {
            out.push_back(all.substr(start, i - start));
            start = i + 1;
        }
    return out;
}

static void say(const std::string &s) {
    // Unbuffered: what is written stays written if the next case dies.
    const char *p = s.data();
    size_t n = s.size();
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w <= 0) std::exit(3);
        p += w;
        n -= (size_t)w;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    std::vector<std::string> keys = split(argv[1]);
    std::vector<std::string> cases = split(argv[2]);
    size_t first = std::strtoul(argv[3], nullptr, 10);
    for (size_t n = first; n < cases.size(); n++) {
        struct itimerval t = {{0, 0}, {CPU_MS / 1000, (CPU_MS % 1000) * 1000}};
        setitimer(ITIMER_VIRTUAL, &t, nullptr);
        const std::string &c = cases[n];
        bool icase = c[0] == 'i';
        std::string pattern = c.substr(1);
        std::string line = std::to_string(n) + " ";
        try {
            std::regex re(pattern, icase ? std::regex_constants::icase
                                         : std::regex_constants::basic);
            std::string match, search;
            for (const std::string &k : keys) {
                match += std::regex_match(k, re) ? '1' : '0';
                search += std::regex_search(k, re) ? '1' : '0';
            }
            line += match + " " + search + "\n";
        } catch (const std::regex_error &e) {
            line += "throw " + std::to_string((int)e.code()) + "\n";
        }
        say(line);
    }
    return 0;
}
