#include <iostream>
int main() { std::cout << "omniround " << OMNI_VERSION << "\n"; }
